package events

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// Store is what the dispatcher needs from the database.
type Store interface {
	ClaimSink(ctx context.Context, name, holder string, now, until time.Time) (int64, bool, error)
	AdvanceSink(ctx context.Context, name, holder string, seq int64) error
	AuditAfter(ctx context.Context, after int64, limit int) ([]store.AuditEvent, error)
}

// Observer counts deliveries (outcome delivered, retry or dropped).
type Observer interface {
	Event(sink, typ, outcome string)
}

// Route is one configured sink and what it receives.
type Route struct {
	// Name identifies the sink's cursor in the database; renaming a sink
	// starts it afresh at the newest event.
	Name   string
	Sink   Sink
	Filter Filter
	// GiveUpAfter drops an event still undelivered this long after its
	// first attempt, so one poisoned event cannot stop a sink forever.
	// Default 24h.
	GiveUpAfter time.Duration
}

// Dispatcher delivers audit-derived events to sinks.
type Dispatcher struct {
	Store  Store
	Routes []Route
	// Holder names this replica in leases (hostname and process ID).
	Holder string
	// Lease is how long a claim lasts without renewal. Default 30s; it
	// must exceed a sink's delivery timeout.
	Lease time.Duration
	// Poll is the wait between looks at the log once caught up (idle, or
	// after a batch smaller than a page). Default 2s.
	Poll time.Duration
	// MinBackoff and MaxBackoff bound the retry delays, which double per
	// attempt with jitter. Defaults 1s and 5m.
	MinBackoff, MaxBackoff time.Duration
	Log                    *slog.Logger
	Observer               Observer
	Now                    func() time.Time

	// known is each sink's cursor as last seen (sink name → int64): an
	// idle replica looks at the log with it instead of writing a lease
	// claim every poll.
	known sync.Map
}

// Run delivers until ctx ends, one goroutine per route.
func (d *Dispatcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, r := range d.Routes {
		wg.Go(func() { d.run(ctx, r) })
	}
	wg.Wait()
}

func (d *Dispatcher) defaults() (lease, poll, minB, maxB time.Duration, now func() time.Time) {
	lease, poll, minB, maxB, now = d.Lease, d.Poll, d.MinBackoff, d.MaxBackoff, d.Now
	if lease <= 0 {
		lease = 30 * time.Second
	}
	if poll <= 0 {
		poll = 2 * time.Second
	}
	if minB <= 0 {
		minB = time.Second
	}
	if maxB < minB {
		maxB = max(minB, 5*time.Minute)
	}
	if now == nil {
		now = time.Now
	}
	return
}

func (d *Dispatcher) run(ctx context.Context, r Route) {
	_, poll, _, _, _ := d.defaults()
	for ctx.Err() == nil {
		n, err := d.Step(ctx, r)
		if err != nil && ctx.Err() == nil {
			d.Log.LogAttrs(ctx, slog.LevelError, "event delivery", slog.String("sink", r.Name), slog.String("error", err.Error()))
		}
		if caughtUp(n, err) {
			sleep(ctx, poll)
		}
	}
}

// pageSize is how many audit events one step reads.
const pageSize = 100

// caughtUp reports whether a step that moved past n events left nothing
// waiting: then the dispatcher waits a poll interval before the next look,
// so that under steady enrollment it delivers what gathered meanwhile in
// one batch (one lease claim, one cursor write) instead of waking for
// every event as it is written. Only a full page steps again at once.
func caughtUp(n int, err error) bool { return err != nil || n < pageSize }

// errLeaseLost ends a step when another replica took the sink over.
var errLeaseLost = errors.New("events: sink lease taken over by another replica")

// Step claims the route's sink and delivers the events after its cursor,
// one page of the log. It returns how many audit events it moved past.
//
// The cursor is written once per page, after its events were delivered
// (and before the lease is renewed, before a failing event's retries and
// when the step ends early, for what was delivered by then): a replica
// that dies mid-page leaves the cursor where the page began, and the
// next holder delivers the page again (at least once; receivers drop
// duplicates by event ID). The write is conditional on holding the
// sink, so a replica whose lease was taken over cannot move it.
func (d *Dispatcher) Step(ctx context.Context, r Route) (int, error) {
	lease, _, _, _, now := d.defaults()
	if k, seen := d.known.Load(r.Name); seen {
		next, err := d.Store.AuditAfter(ctx, k.(int64), 1)
		if err != nil || len(next) == 0 {
			return 0, err // nothing new: no claim, no write
		}
	}
	cursor, ok, err := d.Store.ClaimSink(ctx, r.Name, d.Holder, now(), now().Add(lease))
	if err != nil {
		return 0, err
	}
	d.known.Store(r.Name, cursor)
	if !ok {
		return 0, nil
	}
	page, err := d.Store.AuditAfter(ctx, cursor, pageSize)
	if err != nil {
		return 0, err
	}
	written, passed := cursor, cursor
	flush := func() error {
		if passed == written {
			return nil
		}
		if err := d.Store.AdvanceSink(ctx, r.Name, d.Holder, passed); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return errLeaseLost
			}
			return err
		}
		written = passed
		d.known.Store(r.Name, passed)
		return nil
	}
	// stop ends the step early at event i: what was delivered is kept
	// unless the step ends because ctx did (a shutdown writes nothing).
	stop := func(i int, err error) (int, error) {
		if ctx.Err() == nil {
			if ferr := flush(); ferr != nil && !errors.Is(err, errLeaseLost) {
				d.Log.LogAttrs(ctx, slog.LevelWarn, "event cursor not saved", slog.String("sink", r.Name), slog.String("error", ferr.Error()))
			}
		}
		return i, err
	}
	claimed := now()
	for i, a := range page {
		e, ok := FromAudit(a)
		if ok && r.Filter.Match(e) {
			if now().Sub(claimed) > lease/2 {
				if err := flush(); err != nil {
					return i, err
				}
				if _, ok, err := d.Store.ClaimSink(ctx, r.Name, d.Holder, now(), now().Add(lease)); err != nil {
					return i, err
				} else if !ok {
					return i, errLeaseLost
				}
				claimed = now()
			}
			if err := d.deliver(ctx, r, e, flush); err != nil {
				return stop(i, err)
			}
		}
		passed = a.Seq
	}
	if err := flush(); err != nil {
		return 0, err
	}
	return len(page), nil
}

// deliver retries one event with backoff, extending the lease over each
// wait, until it is delivered, given up on, or the lease is lost. Before
// the first wait it saves the cursor (flush): a sink that is down for
// hours does not have the events before this one sent again.
func (d *Dispatcher) deliver(ctx context.Context, r Route, e Event, flush func() error) error {
	lease, _, minB, maxB, now := d.defaults()
	giveUp := r.GiveUpAfter
	if giveUp <= 0 {
		giveUp = 24 * time.Hour
	}
	first := now()
	backoff := minB
	for attempt := 1; ; attempt++ {
		err := r.Sink.Deliver(ctx, e)
		if err == nil {
			d.observe(r.Name, e.Type, "delivered")
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if now().Sub(first) >= giveUp {
			d.observe(r.Name, e.Type, "dropped")
			d.Log.LogAttrs(ctx, slog.LevelError, "event dropped after retrying", slog.String("sink", r.Name),
				slog.String("id", e.ID), slog.String("type", e.Type), slog.Int("attempts", attempt), slog.String("error", err.Error()))
			return nil
		}
		if attempt == 1 {
			if err := flush(); err != nil {
				return err
			}
		}
		d.observe(r.Name, e.Type, "retry")
		wait := backoff/2 + rand.N(backoff/2+1) // jitter: sinks are not hit in lockstep
		d.Log.LogAttrs(ctx, slog.LevelWarn, "event delivery failed; retrying", slog.String("sink", r.Name),
			slog.String("id", e.ID), slog.String("type", e.Type), slog.Int("attempt", attempt),
			slog.Duration("retry_in", wait), slog.String("error", err.Error()))
		// Hold the lease through the wait and the next attempt.
		if _, ok, err := d.Store.ClaimSink(ctx, r.Name, d.Holder, now(), now().Add(wait+lease)); err != nil {
			return err
		} else if !ok {
			return errLeaseLost
		}
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
		backoff = min(backoff*2, maxB)
	}
}

func (d *Dispatcher) observe(sink, typ, outcome string) {
	if d.Observer != nil {
		d.Observer.Event(sink, typ, outcome)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
