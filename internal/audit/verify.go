package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// Log is the part of the store this package reads and appends to.
type Log interface {
	AppendAudit(ctx context.Context, e store.AuditEvent) error
	// AuditAfter returns up to limit events with Seq > after, oldest first.
	AuditAfter(ctx context.Context, after int64, limit int) ([]store.AuditEvent, error)
	// ListAudit returns the newest events first (of the profiles named,
	// when any are).
	ListAudit(ctx context.Context, limit int, profiles ...string) ([]store.AuditEvent, error)
}

// Report is the outcome of verifying the log.
type Report struct {
	// Events were checked; Unkeyed of them, up to seq UnkeyedLast,
	// precede the keyed chain.
	Events, Unkeyed, UnkeyedLast int64
	// Last is the newest event's seq and Head its hash.
	Last int64
	Head []byte
	// Problem names the first break ("" when intact); BadSeq is the
	// first sequence number concerned.
	Problem string
	BadSeq  int64
	// NoKey: the log is keyed and no key was given, so Problem says it
	// could not be checked rather than that it was tampered with.
	NoKey bool
}

// Verifier walks the log oldest first. It keeps its place, so that a
// long-running server checks only what was appended since its last
// checkpoint.
type Verifier struct {
	Log Log
	// Key checks the keyed chain; nil checks unkeyed events only.
	Key   []byte
	chain store.ChainVerifier
	r     Report
}

// Run checks the events appended since the last call (all of them on the
// first) and, with cp, that the log still holds what the checkpoint
// covers. The report describes the whole log seen so far.
func (v *Verifier) Run(ctx context.Context, cp *Checkpoint) (Report, error) {
	if v.r.Problem != "" {
		return v.r, nil
	}
	v.chain.Key = v.Key
	if v.r.Last > 0 {
		// The newest event checked must still be there, unchanged:
		// otherwise the log was cut back (and perhaps appended to again).
		page, err := v.Log.AuditAfter(ctx, v.r.Last-1, 1)
		if err != nil {
			return v.r, err
		}
		if len(page) == 0 || page[0].Seq != v.r.Last || !bytes.Equal(page[0].Hash, v.r.Head) {
			return v.fail(v.r.Last, "audit event %d was removed or changed after it was verified", v.r.Last), nil
		}
	}
	for {
		page, err := v.Log.AuditAfter(ctx, v.r.Last, 1000)
		if err != nil {
			return v.r, err
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			// A gap whose next event still links to the one before is a
			// sequence number skipped by a rolled-back append of an
			// earlier version (PostgreSQL); keyed events cover their seq.
			if e.Seq != v.r.Last+1 && !(v.r.Last > 0 && !v.chain.Keyed() && bytes.Equal(e.PrevHash, v.r.Head)) {
				return v.fail(v.r.Last+1, "audit events %d to %d are missing (deleted)", v.r.Last+1, e.Seq-1), nil
			}
			if p := v.chain.Next(e); p != "" {
				return v.fail(e.Seq, "%s", p), nil
			}
			if !v.chain.Keyed() {
				v.r.UnkeyedLast = e.Seq
			}
			v.r.Events++
			v.r.Last, v.r.Head = e.Seq, e.Hash
			if cp != nil && e.Seq == cp.Seq && !bytes.Equal(e.Hash, cp.HeadBytes()) {
				return v.fail(e.Seq, "audit event %d is not the one the checkpoint of %s covers: the log was cut back before it and written on since, or events up to it were changed, removed or inserted with the audit key",
					e.Seq, cp.Time.Format(time.RFC3339)), nil
			}
		}
	}
	v.r.Unkeyed = v.chain.Unkeyed
	if p := v.chain.Done(); p != "" {
		return v.fail(1, "%s", p), nil
	}
	if cp != nil && v.r.Last < cp.Seq {
		return v.fail(v.r.Last+1, "the log ends at event %d but the checkpoint of %s covers %d events: events %d to %d were cut from the end",
			v.r.Last, cp.Time.Format(time.RFC3339), cp.Seq, v.r.Last+1, cp.Seq), nil
	}
	return v.r, nil
}

func (v *Verifier) fail(seq int64, format string, args ...any) Report {
	v.r.Problem, v.r.BadSeq = fmt.Sprintf(format, args...), seq
	v.r.Unkeyed, v.r.NoKey = v.chain.Unkeyed, v.chain.NoKey
	return v.r
}

// Start makes sure the log is keyed with key before the server writes to
// it: an empty log, or one written by an earlier version (unkeyed), gets
// an ActionChainKeyed event, whose HMAC pins everything before it. A log
// whose newest event is keyed with another key is refused (an error
// wrapping store.ErrAuditHead): replicas must share the audit key, and a
// lost key must not silently start a chain nobody can verify. So is one
// whose newest event is unkeyed after the chain was keyed
// (store.ErrAuditHeadUnkeyed): it must not be keyed again over a forged
// event. It reports whether the marker was appended.
func Start(ctx context.Context, log Log, key *Key, now time.Time) (bool, error) {
	head, err := log.ListAudit(ctx, 1)
	if err != nil {
		return false, err
	}
	unkeyed := int64(0)
	if len(head) == 1 {
		e := head[0]
		if h, err := e.KeyedHash(key.Chain(), e.PrevHash); err == nil && bytes.Equal(h, e.Hash) {
			return false, nil
		}
		unkeyed = e.Seq
	}
	// The store checks the head again under its append lock: a replica
	// with another key that got there first is refused here too.
	err = log.AppendAudit(ctx, store.AuditEvent{Time: now, Actor: "scepd", Action: store.ActionChainKeyed, Object: "audit", Outcome: "ok",
		Details: map[string]string{"key_id": key.ID(), "unkeyed_until_seq": strconv.FormatInt(unkeyed, 10)}})
	if errors.Is(err, store.ErrAuditHeadUnkeyed) {
		return false, fmt.Errorf("%w: an event was added or rewritten without the audit key (run scepd audit verify; remove the bad newest events to resume), or a replica of an earlier version of scepd, which does not key the chain, writes to this database",
			err)
	}
	if errors.Is(err, store.ErrAuditHead) {
		return false, fmt.Errorf("%w, audit key %s (%s): every replica must use the same audit key (copy it, or point SCEPD_AUDIT_KEY_FILE at it), or the event was altered (run scepd audit verify)",
			err, key.ID(), key.Path)
	}
	return err == nil, err
}

// Checkpointer signs checkpoints of the log after verifying it.
type Checkpointer struct {
	Log   Log
	Key   *Key
	Actor string
	Now   func() time.Time
	v     *Verifier
}

// Verify verifies the events appended since the last call (the whole log
// on the first), as Checkpoint does, without signing anything.
func (c *Checkpointer) Verify(ctx context.Context) (Report, error) {
	if c.v == nil {
		c.v = &Verifier{Log: c.Log, Key: c.Key.Chain()}
	}
	return c.v.Run(ctx, nil)
}

// Checkpoint verifies the events since its last checkpoint (the whole log
// on the first call) and signs a checkpoint of the head, appending it to
// the log as an ActionCheckpoint event. With skipCurrent, a log whose
// newest event is already a checkpoint of every event before it gets
// none (nothing happened since); an event appended while that checkpoint
// was signed sits between what it covers and itself, and needs another.
// A broken log gets no checkpoint: the report names the break.
func (c *Checkpointer) Checkpoint(ctx context.Context, skipCurrent bool) (*Checkpoint, Report, error) {
	r, err := c.Verify(ctx)
	if err != nil || r.Problem != "" {
		return nil, r, err
	}
	if skipCurrent && r.Last > 0 {
		head, err := c.Log.AuditAfter(ctx, r.Last-1, 1)
		if err != nil {
			return nil, r, err
		}
		if len(head) == 1 && head[0].Action == ActionCheckpoint && head[0].Details["seq"] == strconv.FormatInt(head[0].Seq-1, 10) {
			return nil, r, nil
		}
	}
	cp := c.Key.Sign(r.Last, r.Head, c.Now())
	if err := c.Log.AppendAudit(ctx, cp.Event(c.Actor)); err != nil {
		return nil, r, err
	}
	return &cp, r, nil
}
