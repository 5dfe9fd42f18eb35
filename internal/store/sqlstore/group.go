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
)

// maxGroup bounds the callers one group transaction serves.
const maxGroup = 64

// errClosed answers a write after Close.
var errClosed = errors.New("sqlstore: the store is closed")

// group is the group commit writer: one goroutine that takes every write
// transaction queued when it is free, runs each caller's function in a
// SAVEPOINT of one transaction (a caller's failure rolls back its own
// work only), commits once (one fsync for them all), and then answers
// every caller. No caller is answered before the commit is durable.
type group struct {
	s       *Store
	jobs    chan *job // unbuffered: the callers waiting are the queue
	quit    chan struct{}
	stopped chan struct{}
	once    sync.Once
	// waiting counts the callers queued for the writer, taken those it
	// took.
	waiting atomic.Int32
	taken   atomic.Int64
}

// job is one caller's write transaction.
type job struct {
	ctx  context.Context
	fn   func(context.Context, *sql.Tx) error
	done chan error
}

// startGroup starts the writer; stop ends it.
func startGroup(s *Store) *group {
	g := &group{s: s, jobs: make(chan *job), quit: make(chan struct{}), stopped: make(chan struct{})}
	go g.loop()
	return g
}

// stop makes the writer finish the group it runs and return, and waits
// for it.
func (g *group) stop() {
	g.once.Do(func() { close(g.quit) })
	<-g.stopped
}

// run has fn run by the writer and returns its outcome once committed.
// A caller that gives up while queued is not run; once its function
// runs, it is answered when the group commits.
func (g *group) run(ctx context.Context, fn func(context.Context, *sql.Tx) error) error {
	j := &job{ctx: ctx, fn: fn, done: make(chan error, 1)}
	g.waiting.Add(1)
	select {
	case g.jobs <- j:
		g.waiting.Add(-1)
	case <-ctx.Done():
		g.waiting.Add(-1)
		return ctx.Err()
	case <-g.quit:
		g.waiting.Add(-1)
		return errClosed
	}
	return <-j.done
}

func (g *group) loop() {
	defer close(g.stopped)
	batch := make([]*job, 0, maxGroup)
	for {
		select {
		case j := <-g.jobs:
			g.taken.Add(1)
			batch = append(batch[:0], j)
		case <-g.quit:
			return
		}
		// Everyone who queued while the last group committed joins this one.
	gather:
		for len(batch) < maxGroup {
			select {
			case j := <-g.jobs:
				g.taken.Add(1)
				batch = append(batch, j)
			default:
				break gather
			}
		}
		g.commit(batch)
	}
}

// commit runs a group in one transaction and answers its callers. The
// observer sees each group transaction as the operation "GroupCommit".
func (g *group) commit(batch []*job) {
	start := time.Now()
	errs := make([]error, len(batch))
	err := g.runAll(batch, errs)
	if g.s.obs != nil {
		g.s.obs.ObserveStore("GroupCommit", time.Since(start), err)
	}
	for i, j := range batch {
		if errs[i] == nil {
			// Committed with the group, or lost with it.
			errs[i] = err
		}
		j.done <- errs[i]
	}
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
