package storetest

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/audit"
	"github.com/scepd/scepd/internal/store"
)

// Keyed is a store whose audit chain can be keyed.
type Keyed interface {
	store.Store
	SetAuditKey(key []byte)
}

// Exec runs SQL on a store's database behind its back, as an attacker
// with database access (and without the audit key) would; the query uses
// $N placeholders.
type Exec func(t *testing.T, query string, args ...any)

// ExecOn is an Exec on db.
func ExecOn(db *sql.DB) Exec {
	return func(t *testing.T, q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// RunAuditTamper checks that the keyed audit chain shows what an attacker
// with database access but no audit key does to the log: rewriting an
// event and recomputing every later hash, inserting, deleting, cutting
// the end (with a checkpoint), and rewriting it all unkeyed; and that a
// checkpoint covers what was appended while it was signed. newStore
// returns an empty store and raw access to its database.
func RunAuditTamper(t *testing.T, newStore func(t *testing.T) (Keyed, Exec, func(t *testing.T) Keyed)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Keyed, exec Exec, key *audit.Key)
	}{
		{"Intact", testAuditIntact},
		{"RewrittenAndRecomputed", testAuditRewritten},
		{"Inserted", testAuditInserted},
		{"DeletedInTheMiddle", testAuditDeleted},
		{"TailCut", testAuditTailCut},
		{"TailCutThenAppended", testAuditTailCutAppended},
		{"DowngradedToUnkeyed", testAuditDowngraded},
		{"UnkeyedPrefixPinned", testAuditUnkeyedPrefix},
		{"ForeignKeyRefused", testAuditForeignKey},
		{"CheckpointRacesAppend", testAuditCheckpointRacesAppend},
	}
	for column, rewrite := range headRewrites {
		tests = append(tests, struct {
			name string
			fn   func(t *testing.T, s Keyed, exec Exec, key *audit.Key)
		}{"HeadRewrittenRefused/" + column, testAuditHeadRewritten(rewrite)})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, exec, _ := newStore(t)
			defer s.Close()
			key, _, err := audit.LoadOrCreateKey(t.TempDir(), "", nil)
			if err != nil {
				t.Fatal(err)
			}
			tc.fn(t, s, exec, key)
		})
	}
	for _, how := range []string{"rewritten", "appended", "marker deleted"} {
		t.Run("UnkeyedHeadRefused/"+how, func(t *testing.T) {
			s, exec, reopen := newStore(t)
			defer s.Close()
			key, _, err := audit.LoadOrCreateKey(t.TempDir(), "", nil)
			if err != nil {
				t.Fatal(err)
			}
			testAuditUnkeyedHead(t, s, exec, reopen, key, how)
		})
	}
}

// keyedLog keys s and appends n events after the chain_keyed marker
// (seq 1): the log has n+1 events.
func keyedLog(t *testing.T, s Keyed, key *audit.Key, n int) {
	t.Helper()
	s.SetAuditKey(key.Chain())
	if ok, err := audit.Start(ctx, s, key, when); err != nil || !ok {
		t.Fatalf("Start on an empty log = %v, %v; want the marker appended", ok, err)
	}
	appendN(t, s, n)
}

func appendN(t *testing.T, s store.Store, n int) {
	t.Helper()
	for i := range n {
		if err := s.AppendAudit(ctx, store.AuditEvent{Time: when.Add(time.Duration(i) * time.Second), Actor: "op", Action: "test", Object: "o", Outcome: "ok",
			Details: map[string]string{"i": string(rune('a' + i))}}); err != nil {
			t.Fatal(err)
		}
	}
}

// verify checks the whole log with key and, when not nil, cp.
func verify(t *testing.T, s store.Store, key *audit.Key, cp *audit.Checkpoint) audit.Report {
	t.Helper()
	v := &audit.Verifier{Log: s, Key: key.Chain()}
	r, err := v.Run(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// wantBroken fails unless r names event seq, with a message containing want.
func wantBroken(t *testing.T, r audit.Report, seq int64, want string) {
	t.Helper()
	if r.Problem == "" || r.BadSeq != seq || !strings.Contains(r.Problem, want) {
		t.Fatalf("report %+v; want a break at event %d mentioning %q", r, seq, want)
	}
}

func checkpoint(t *testing.T, s store.Store, key *audit.Key) *audit.Checkpoint {
	t.Helper()
	c := &audit.Checkpointer{Log: s, Key: key, Actor: "test", Now: func() time.Time { return when.Add(time.Hour) }}
	cp, r, err := c.Checkpoint(ctx, false)
	if err != nil || r.Problem != "" || cp == nil {
		t.Fatalf("checkpoint: %v %+v", err, r)
	}
	if err := cp.Verify(key.Public()); err != nil {
		t.Fatal(err)
	}
	return cp
}

// recompute rewrites the hashes of events from seq on with plain SHA-256,
// the way earlier versions chained them, so that each links to the one
// before: all an attacker without the key can do.
func recompute(t *testing.T, s store.Store, exec Exec, from int64) {
	t.Helper()
	events, err := s.AuditAfter(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	prev := []byte{}
	for _, e := range events {
		if e.Seq >= from {
			h, err := e.ChainHash(prev)
			if err != nil {
				t.Fatal(err)
			}
			exec(t, `UPDATE audit_events SET prev_hash = $1, hash = $2 WHERE seq = $3`, prev, h, e.Seq)
			e.Hash = h
		}
		prev = e.Hash
	}
}

func testAuditIntact(t *testing.T, s Keyed, _ Exec, key *audit.Key) {
	keyedLog(t, s, key, 4)
	cp := checkpoint(t, s, key)
	appendN(t, s, 2)
	r := verify(t, s, key, cp)
	if r.Problem != "" || r.Events != 8 || r.Unkeyed != 0 || cp.Seq != 5 {
		t.Fatalf("untouched log: %+v (checkpoint at %d); want intact, 8 events, none unkeyed", r, cp.Seq)
	}
	if ir, err := s.CheckIntegrity(ctx); err != nil || len(ir.Problems) != 0 {
		t.Fatalf("CheckIntegrity on an untouched keyed log: %+v %v", ir, err)
	}
}

// racingLog appends an event (an enrollment, say) after the checkpointer
// has verified the log and before its checkpoint is appended.
type racingLog struct {
	store.Store
	t     *testing.T
	raced bool
}

func (l *racingLog) AppendAudit(ctx context.Context, e store.AuditEvent) error {
	if e.Action == audit.ActionCheckpoint && !l.raced {
		l.raced = true
		appendN(l.t, l.Store, 1)
	}
	return l.Store.AppendAudit(ctx, e)
}

// testAuditCheckpointRacesAppend: an event appended while a checkpoint
// was signed lies between what the checkpoint covers and the checkpoint
// itself; the next round must sign one covering it, although the newest
// event is a checkpoint.
func testAuditCheckpointRacesAppend(t *testing.T, s Keyed, _ Exec, key *audit.Key) {
	keyedLog(t, s, key, 2) // events 1-3
	c := &audit.Checkpointer{Log: &racingLog{Store: s, t: t}, Key: key, Actor: "test", Now: func() time.Time { return when.Add(time.Hour) }}
	for _, want := range []int64{3, 5, 0} { // 3, the event raced in as 4, the checkpoint of 3 as 5; 5; nothing new
		cp, r, err := c.Checkpoint(ctx, true)
		if err != nil || r.Problem != "" {
			t.Fatalf("checkpoint: %v %+v", err, r)
		}
		switch {
		case want == 0 && cp != nil:
			t.Fatalf("checkpoint of %d signed when the newest event is a checkpoint covering all before it", cp.Seq)
		case want != 0 && (cp == nil || cp.Seq != want):
			t.Fatalf("checkpoint %+v; want one covering event %d", cp, want)
		}
	}
}

func testAuditRewritten(t *testing.T, s Keyed, exec Exec, key *audit.Key) {
	keyedLog(t, s, key, 5)
	exec(t, `UPDATE audit_events SET actor = 'someone else' WHERE seq = 3`)
	recompute(t, s, exec, 3)
	wantBroken(t, verify(t, s, key, nil), 3, "HMAC")
	if ir, err := s.CheckIntegrity(ctx); err != nil || len(ir.Problems) != 1 || !strings.Contains(ir.Problems[0], "audit event 3") {
		t.Fatalf("CheckIntegrity on a rewritten log: %+v %v; want event 3 named", ir, err)
	}
	// Recomputing the whole log, the marker included, shows at once.
	recompute(t, s, exec, 1)
	wantBroken(t, verify(t, s, key, nil), 1, "HMAC")
}

func testAuditInserted(t *testing.T, s Keyed, exec Exec, key *audit.Key) {
	keyedLog(t, s, key, 5)
	// Make room after event 3 and insert a forged event 4, linked to 3
	// and relinking the next one, hashes recomputed without the key.
	exec(t, `UPDATE audit_events SET seq = -seq WHERE seq > 3`)
	exec(t, `UPDATE audit_events SET seq = 1 - seq WHERE seq < 0`)
	exec(t, `INSERT INTO audit_events (seq, at, actor, action, object, outcome, details, prev_hash, hash)
		SELECT 4, at, 'intruder', action, object, outcome, details, prev_hash, hash FROM audit_events WHERE seq = 3`)
	recompute(t, s, exec, 4)
	wantBroken(t, verify(t, s, key, nil), 4, "HMAC")
}

func testAuditDeleted(t *testing.T, s Keyed, exec Exec, key *audit.Key) {
	keyedLog(t, s, key, 5)
	exec(t, `DELETE FROM audit_events WHERE seq = 3`)
	wantBroken(t, verify(t, s, key, nil), 3, "missing")
	// Renumbered to hide the gap, the link is still broken.
	exec(t, `UPDATE audit_events SET seq = seq - 1 WHERE seq > 3`)
	wantBroken(t, verify(t, s, key, nil), 3, "does not link")
}

func testAuditTailCut(t *testing.T, s Keyed, exec Exec, key *audit.Key) {
	keyedLog(t, s, key, 5)
	cp := checkpoint(t, s, key) // covers 6 events; it is event 7
	exec(t, `DELETE FROM audit_events WHERE seq > 4`)
	// Without a checkpoint a cut end cannot show: what is left is intact.
	if r := verify(t, s, key, nil); r.Problem != "" {
		t.Fatalf("cut log without a checkpoint: %+v", r)
	}
	wantBroken(t, verify(t, s, key, cp), 5, "events 5 to 6 were cut from the end")
}

func testAuditTailCutAppended(t *testing.T, s Keyed, exec Exec, key *audit.Key) {
	keyedLog(t, s, key, 5)
	cp := checkpoint(t, s, key)
	exec(t, `DELETE FROM audit_events WHERE seq > 4`)
	// The server goes on appending: seqs 5 and after are reused.
	appendN(t, s, 5)
	wantBroken(t, verify(t, s, key, cp), 6, "not the one the checkpoint")
}

func testAuditDowngraded(t *testing.T, s Keyed, exec Exec, key *audit.Key) {
	keyedLog(t, s, key, 3)
	// Drop the marker and rewrite the rest as an unkeyed log.
	exec(t, `DELETE FROM audit_events WHERE seq = 1`)
	exec(t, `UPDATE audit_events SET seq = seq - 1`)
	recompute(t, s, exec, 1)
	wantBroken(t, verify(t, s, key, nil), 1, "none of the 3 audit events is keyed")
}

func testAuditUnkeyedPrefix(t *testing.T, s Keyed, exec Exec, key *audit.Key) {
	// A log from an earlier version: unkeyed, with a sequence number
	// skipped by a rolled-back append (PostgreSQL's sequence).
	appendN(t, s, 3)
	exec(t, `UPDATE audit_events SET seq = 5 WHERE seq = 3`)
	s.SetAuditKey(key.Chain())
	if ok, err := audit.Start(ctx, s, key, when); err != nil || !ok {
		t.Fatalf("Start on an unkeyed log = %v, %v; want the marker appended", ok, err)
	}
	if ok, err := audit.Start(ctx, s, key, when); err != nil || ok {
		t.Fatalf("Start on a keyed log = %v, %v; want nothing appended", ok, err)
	}
	appendN(t, s, 2)
	r := verify(t, s, key, nil)
	if r.Problem != "" || r.Events != 6 || r.Unkeyed != 3 || r.UnkeyedLast != 5 || r.Last != 8 {
		t.Fatalf("upgraded log: %+v; want intact, 6 events up to seq 8, 3 unkeyed up to seq 5", r)
	}
	// The marker's HMAC pins the unkeyed events before it.
	exec(t, `UPDATE audit_events SET actor = 'someone else' WHERE seq = 2`)
	recompute(t, s, exec, 2)
	wantBroken(t, verify(t, s, key, nil), 6, "HMAC")
	// Without the key, the keyed part cannot be checked, and says so.
	v := &audit.Verifier{Log: s}
	if r, err := v.Run(ctx, nil); err != nil || !r.NoKey {
		t.Fatalf("verifying a keyed log without the key: %+v %v; want NoKey", r, err)
	}
}

func testAuditForeignKey(t *testing.T, s Keyed, _ Exec, key *audit.Key) {
	seed(t, s)
	keyedLog(t, s, key, 2)
	other, _, err := audit.LoadOrCreateKey(t.TempDir(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	// A replica with another key: refused at start, and (had it raced
	// past Start) on every append, with nothing written.
	s.SetAuditKey(other.Chain())
	if _, err := audit.Start(ctx, s, other, when); !errors.Is(err, store.ErrAuditHead) || !strings.Contains(err.Error(), "same audit key") {
		t.Fatalf("Start with another key: %v; want refused", err)
	}
	wantAppendsRefused(t, s, store.ErrAuditHead, "a head keyed with another key")
	s.SetAuditKey(key.Chain())
	if r := verify(t, s, key, nil); r.Problem != "" || r.Events != 3 {
		t.Fatalf("log after refused appends: %+v", r)
	}
}

// wantAppendsRefused fails t unless an append and an enrollment onto s's
// log are both refused with want (what names the head, in messages), and
// the enrollment's certificate was not stored without its audit event.
func wantAppendsRefused(t *testing.T, s store.Store, want error, what string) {
	t.Helper()
	if err := s.AppendAudit(ctx, store.AuditEvent{Time: when, Actor: "op", Action: "test", Outcome: "ok"}); !errors.Is(err, want) {
		t.Fatalf("append onto %s: %v; want %v", what, err, want)
	}
	if err := s.RecordIssued(ctx, issued("0b", "tx-refused")); !errors.Is(err, want) {
		t.Fatalf("issuing onto %s: %v; want %v", what, err, want)
	}
	if _, err := s.GetCertificate(ctx, "0b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the certificate was stored without its audit event: %v", err)
	}
}

// headRewrites rewrite the newest event (seq 3 of keyedLog's log) in
// place, in each column its HMAC covers, its hash kept.
var headRewrites = map[string]string{
	"Details":  `UPDATE audit_events SET details = '{"i":"z"}' WHERE seq = 3`,
	"Actor":    `UPDATE audit_events SET actor = 'someone else' WHERE seq = 3`,
	"Action":   `UPDATE audit_events SET action = 'other' WHERE seq = 3`,
	"Object":   `UPDATE audit_events SET object = 'other' WHERE seq = 3`,
	"Outcome":  `UPDATE audit_events SET outcome = 'other' WHERE seq = 3`,
	"Time":     `UPDATE audit_events SET at = (SELECT at FROM audit_events WHERE seq = 1) WHERE seq = 3`,
	"PrevHash": `UPDATE audit_events SET prev_hash = hash WHERE seq = 3`,
	"Seq":      `UPDATE audit_events SET seq = 4 WHERE seq = 3`,
}

// testAuditHeadRewritten returns the test of one rewrite: the newest
// event, which this store appended itself, rewritten in place; the next
// append checks it again and refuses, with nothing written.
func testAuditHeadRewritten(rewrite string) func(t *testing.T, s Keyed, exec Exec, key *audit.Key) {
	return func(t *testing.T, s Keyed, exec Exec, key *audit.Key) {
		seed(t, s)
		keyedLog(t, s, key, 2)
		exec(t, rewrite)
		wantAppendsRefused(t, s, store.ErrAuditHead, "a rewritten head")
	}
}

// testAuditUnkeyedHead: a head made without the key after the chain was
// keyed: the newest event rewritten, or one more appended, hashed the
// unkeyed way (as before the chain was keyed, which anyone can compute),
// each seen by a store opened afterwards (which asks the log whether the
// chain was keyed); or rewritten so with the chain_keyed marker deleted
// too, seen by the store that appended to the keyed chain (which knows).
// The next append refuses it, with nothing written, and so does a start
// that would key the chain again.
func testAuditUnkeyedHead(t *testing.T, s Keyed, exec Exec, reopen func(t *testing.T) Keyed, key *audit.Key, how string) {
	seed(t, s)
	keyedLog(t, s, key, 2)
	forged := int64(3)
	switch how {
	case "appended":
		forged = 4
		exec(t, `INSERT INTO audit_events (seq, at, actor, action, object, outcome, details, prev_hash, hash, profile)
			SELECT 4, at, 'intruder', action, object, outcome, details, hash, hash, profile FROM audit_events WHERE seq = 3`)
	case "marker deleted":
		exec(t, `DELETE FROM audit_events WHERE seq = 1`)
		exec(t, `UPDATE audit_events SET actor = 'intruder' WHERE seq = 3`)
	default:
		exec(t, `UPDATE audit_events SET actor = 'intruder' WHERE seq = 3`)
	}
	if how != "marker deleted" {
		fresh := reopen(t)
		defer fresh.Close()
		fresh.SetAuditKey(key.Chain())
		s = fresh
	}
	recompute(t, s, exec, forged)
	wantAppendsRefused(t, s, store.ErrAuditHeadUnkeyed, "an unkeyed head of a keyed chain")
	if _, err := audit.Start(ctx, s, key, when); !errors.Is(err, store.ErrAuditHead) || !strings.Contains(err.Error(), "without the audit key") {
		t.Fatalf("Start onto an unkeyed head of a keyed chain: %v; want ErrAuditHead, saying what happened", err)
	}
	if events, err := s.AuditAfter(ctx, 0, 100); err != nil || len(events) == 0 || events[len(events)-1].Seq != forged {
		t.Fatalf("log after refused appends: %d events, %v; want none after event %d", len(events), err, forged)
	}
	if how != "marker deleted" {
		wantBroken(t, verify(t, s, key, nil), forged, "HMAC")
	}
}
