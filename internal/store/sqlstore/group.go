package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scepd/scepd/internal/slot"
)

// maxGroup bounds the callers one group transaction serves.
const maxGroup = 64

// maxCommitWait bounds how long a group waits for announced writes to
// join it (see group.await).
const maxCommitWait = 10 * time.Millisecond

// errClosed answers a write after Close.
var errClosed = errors.New("sqlstore: the store is closed")

// errLead tells a queued caller that it leads the next group.
var errLead = errors.New("sqlstore: lead the next group")

// group is the group commit of the write transactions, led by a caller:
// the caller that finds no group running leads one on its own goroutine.
// It takes its own function and every one queued (up to maxGroup), runs
// each in a SAVEPOINT of one transaction (a caller's failure rolls back
// its own work only; a group of one needs none), commits once (one fsync for them all), and then
// answers the others; callers that arrive meanwhile queue, and the first
// of them leads the next group. No caller is answered before the commit
// is durable. A lone caller commits on its own goroutine: no hand-off.
type group struct {
	s *Store
	// mu guards queue, leading and closed; idle is signalled when a
	// leader steps down.
	mu      sync.Mutex
	idle    sync.Cond
	queue   []*job
	leading bool
	closed  bool
	// taken counts the callers that groups took.
	taken atomic.Int64
	// announced and settled count the writes announced with expect and
	// those of them that arrived (or will not come); wake is signalled at
	// each settlement; lag is a moving average of the time from an
	// announcement to its settlement, in nanoseconds.
	announced atomic.Int64
	settled   atomic.Int64
	wake      chan struct{}
	lag       atomic.Int64
	// maxWait is maxCommitWait (tests change it).
	maxWait time.Duration
}

// expectation is one write announced with expect.
type expectation struct {
	g    *group
	at   time.Time
	done atomic.Bool
}

// expectKey is the context key of a write's expectation.
type expectKey struct{}

// job is one caller's write transaction.
type job struct {
	ctx context.Context
	fn  func(context.Context, *sql.Tx) error
	// done receives one value: the outcome, or errLead.
	done chan error
}

func newGroup(s *Store) *group {
	g := &group{s: s, wake: make(chan struct{}, 1), maxWait: maxCommitWait}
	g.idle.L = &g.mu
	return g
}

// stop refuses later writes, answers those queued with errClosed, and
// waits for the group running to be answered.
func (g *group) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	for g.leading {
		g.idle.Wait()
	}
}

// run has fn run in a group and returns its outcome once committed. A
// caller that gives up while queued is not run; once a group took it, it
// is answered when the group commits.
func (g *group) run(ctx context.Context, fn func(context.Context, *sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	j := &job{ctx: ctx, fn: fn}
	e, _ := ctx.Value(expectKey{}).(*expectation)
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		e.settle()
		return errClosed
	}
	if !g.leading {
		g.leading = true
		g.mu.Unlock()
		e.settle()
		return g.lead(j)
	}
	j.done = make(chan error, 1)
	g.queue = append(g.queue, j)
	g.mu.Unlock()
	e.settle() // queued: the group waiting for it may begin
	var err error
	select {
	case err = <-j.done:
	case <-ctx.Done():
		g.mu.Lock()
		for i, q := range g.queue {
			if q == j {
				g.queue = append(g.queue[:i], g.queue[i+1:]...)
				g.mu.Unlock()
				return ctx.Err()
			}
		}
		g.mu.Unlock()
		// A group took it, or it leads the next one: it is answered.
		err = <-j.done
	}
	if err == errLead {
		return g.lead(j)
	}
	return err
}

// lead runs a group: j, its leader's job, and those queued behind it. It
// answers the others, hands the lead to the first caller queued
// meanwhile, or steps down, and returns j's outcome. A panic outside the
// callers' functions (call recovers theirs) loses the group: the others
// are answered, the lead passed on, and the panic goes on in the leader.
func (g *group) lead(j *job) (err error) {
	g.await(j.ctx)
	g.mu.Lock()
	n := min(maxGroup-1, len(g.queue))
	batch := append(make([]*job, 0, 1+n), j)
	batch = append(batch, g.queue[:n]...)
	clear(g.queue[:n]) // the array does not keep them
	g.queue = g.queue[n:]
	if len(g.queue) == 0 {
		g.queue = nil // let go of the array
	}
	g.taken.Add(int64(len(batch)))
	g.mu.Unlock()
	errs := make([]error, len(batch))
	gerr := errors.New("sqlstore: the group transaction was lost: its leader panicked")
	defer func() {
		for i, o := range batch {
			if errs[i] == nil {
				// Committed with the group, or lost with it.
				errs[i] = gerr
			}
			if o != j {
				o.done <- errs[i]
			}
		}
		g.handOff()
	}()
	start := time.Now()
	gerr = g.runAll(batch, errs)
	if g.s.obs != nil {
		g.s.obs.ObserveStore("GroupCommit", time.Since(start), gerr)
	}
	if errs[0] == nil {
		return gerr
	}
	return errs[0]
}

// expect announces a write that will follow shortly with the returned
// context (see Store.Expect); done settles the announcement if that write
// does not come.
func (g *group) expect(ctx context.Context) (context.Context, func()) {
	e := &expectation{g: g, at: time.Now()}
	g.announced.Add(1)
	return context.WithValue(ctx, expectKey{}, e), e.settle
}

// settle marks e's write arrived (or not coming), once; a nil e is none.
func (e *expectation) settle() {
	if e == nil || !e.done.CompareAndSwap(false, true) {
		return
	}
	g := e.g
	lag := g.lag.Load()
	g.lag.Store(lag + (int64(time.Since(e.at))-lag)/8) // a lost update only slows the average
	g.settled.Add(1)
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// await holds a group about to begin while announced writes (enrollments
// being decided) are still to come, for them to join it: up to twice the
// usual time from announcement to write, never more than maxCommitWait,
// and not once the group is full. Enrollments decided together then share
// one commit, its fsync and the pages they all change, instead of each
// paying its own. It waits only when requests queue for the server's
// processing slots (slot.Busy on the leader's ctx): the leader waits with
// its slot given back (Store.tx), which then goes to work at once, so the
// wait costs the server no throughput; with slots to spare it would only
// add latency. Nothing announced, nothing waited for.
func (g *group) await(ctx context.Context) {
	if g.settled.Load() >= g.announced.Load() || !slot.Busy(ctx) {
		return
	}
	wait := min(g.maxWait, 2*time.Duration(g.lag.Load()))
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for g.settled.Load() < g.announced.Load() && !g.full() {
		select {
		case <-g.wake:
		case <-t.C:
			return
		}
	}
}

// full reports whether the callers queued fill a group with its leader.
func (g *group) full() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue) >= maxGroup-1
}

// handOff ends a group: the first caller queued leads the next one, or
// (none queued) the leader steps down. After Close, those queued are
// answered with errClosed instead.
func (g *group) handOff() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		for _, q := range g.queue {
			q.done <- errClosed
		}
		g.queue = nil
	}
	if len(g.queue) > 0 {
		// Out of the queue first: if it gives up now, it still finds
		// errLead and leads.
		next := g.queue[0]
		g.queue[0] = nil
		g.queue = g.queue[1:]
		next.done <- errLead
		return
	}
	g.leading = false
	g.idle.Broadcast()
}

// runAll runs each job in its savepoint, setting errs for those that
// fail, and commits; its error is the group's: the transaction was lost.
func (g *group) runAll(batch []*job, errs []error) error {
	// The transaction is the writer's, not a caller's: one caller
	// giving up must not roll back the others' work (a cancelled
	// statement in SQLite can roll back the whole transaction), so
	// functions run without their caller's cancellation too.
	tx, err := g.s.db.BeginTx(context.Background(), nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if len(batch) == 1 {
		// A lone caller needs no SAVEPOINT: a failure rolls back the
		// transaction, which holds its work alone. (A savepoint costs
		// SQLite a statement journal of the pages it changes, a
		// temporary file once they pass 64 KiB.)
		j := batch[0]
		if errs[0] = j.ctx.Err(); errs[0] != nil {
			return nil
		}
		if errs[0] = call(j, tx); errs[0] != nil {
			return nil // rolled back
		}
		return tx.Commit()
	}
	for i, j := range batch {
		if err := j.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if _, err := tx.Exec(`SAVEPOINT job`); err != nil {
			return err
		}
		if errs[i] = call(j, tx); errs[i] != nil {
			if _, err := tx.Exec(`ROLLBACK TO job`); err != nil {
				// The failure took the transaction with it (SQLite rolls
				// back on a full disk or an I/O error): the others lose
				// their work for the same reason.
				if g.s.d.Classify(errs[i]) != nil {
					err = errs[i]
				}
				return fmt.Errorf("the group transaction was lost with another caller's write: %w", err)
			}
		}
		if _, err := tx.Exec(`RELEASE job`); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// call runs a job's function. A panic in it is that caller's error (its
// savepoint is rolled back like any failure): it must not end the writer,
// which would leave every other caller waiting.
func call(j *job, tx *sql.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sqlstore: a write transaction panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return j.fn(context.WithoutCancel(j.ctx), tx)
}
