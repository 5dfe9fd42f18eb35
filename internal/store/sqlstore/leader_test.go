package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store/sqlite"
	"github.com/scepd/scepd/internal/store/sqlstore"
)

// openLeader opens a store with a table t of ids for the group tests.
func openLeader(t *testing.T) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scepd.db")
	s := openSQLite(t, path)
	if err := sqlstore.Write(context.Background(), s, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE t (id INTEGER PRIMARY KEY)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return s, path
}

func insert(id int) func(context.Context, *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO t (id) VALUES ($1)`, id)
		return err
	}
}

// stored reports which ids t holds, read on a connection of its own.
func stored(t *testing.T, path string) map[int]bool {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id FROM t`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	ids := map[int]bool{}
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	return ids
}

// TestGroupLoneCallerLeads: a caller that finds no group running commits
// its write on its own goroutine (no hand-off to a writer goroutine).
func TestGroupLoneCallerLeads(t *testing.T) {
	s, path := openLeader(t)
	var stack string
	err := sqlstore.Write(context.Background(), s, func(ctx context.Context, tx *sql.Tx) error {
		buf := make([]byte, 64<<10)
		stack = string(buf[:runtime.Stack(buf, false)])
		return insert(1)(ctx, tx)
	})
	if err != nil {
		t.Fatal(err)
	}
	// The caller's goroutine is the test's: testing.tRunner is at the
	// bottom of its stack (the function's own frame names the test on
	// any goroutine).
	if !strings.Contains(stack, "testing.tRunner(") {
		t.Errorf("the write ran on another goroutine:\n%s", stack)
	}
	if !stored(t, path)[1] {
		t.Error("the write was not committed")
	}
}

// holdWriteLock takes SQLite's write lock on another connection: the
// leader waits at BEGIN while others queue behind it. It returns the
// function that releases it.
func holdWriteLock(t *testing.T, path string) func() {
	t.Helper()
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	lock, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			lock.ExecContext(context.Background(), "ROLLBACK")
			lock.Close()
			other.Close()
		})
	}
	t.Cleanup(release)
	return release
}

func waitQueued(t *testing.T, s *sqlite.Store, waiting, taken int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w, tk := sqlstore.Queued(s)
		if w == waiting && tk == taken {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queued %d, taken %d; want %d, %d", w, tk, waiting, taken)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGroupQueuedCancel: a caller that gives up while queued is answered
// with its context's error at once and its write never runs; the leader
// and the caller queued behind it commit.
func TestGroupQueuedCancel(t *testing.T) {
	s, path := openLeader(t)
	_, taken0 := sqlstore.Queued(s)
	release := holdWriteLock(t, path)
	errs := make([]error, 3)
	var ran atomic.Bool
	cctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); errs[0] = sqlstore.Write(context.Background(), s, insert(10)) }()
	waitQueued(t, s, 0, taken0+1) // the leader, waiting at BEGIN
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs[1] = sqlstore.Write(cctx, s, func(ctx context.Context, tx *sql.Tx) error { ran.Store(true); return insert(11)(ctx, tx) })
	}()
	waitQueued(t, s, 1, taken0+1)
	wg.Add(1)
	go func() { defer wg.Done(); errs[2] = sqlstore.Write(context.Background(), s, insert(12)) }()
	waitQueued(t, s, 2, taken0+1)
	cancel()
	waitQueued(t, s, 1, taken0+1) // it left the queue while the leader still waits
	release()
	wg.Wait()
	if errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], context.Canceled) {
		t.Fatalf("outcomes %v; want nil, context.Canceled, nil", errs)
	}
	if ran.Load() {
		t.Error("the write of a caller that gave up while queued ran")
	}
	if ids := stored(t, path); !ids[10] || ids[11] || !ids[12] {
		t.Errorf("stored %v; want 10 and 12", ids)
	}
}

// TestGroupClose: Close waits for the group running, whose callers are
// answered after its commit; callers queued behind it and callers after
// Close are answered errClosed, and nothing they wrote is stored.
func TestGroupClose(t *testing.T) {
	s, path := openLeader(t)
	_, taken0 := sqlstore.Queued(s)
	release := holdWriteLock(t, path)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = sqlstore.Write(context.Background(), s, insert(20+i)) }()
		if i == 0 {
			waitQueued(t, s, 0, taken0+1)
		} else {
			waitQueued(t, s, i, taken0+1)
		}
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a group was running")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	<-closed
	wg.Wait()
	if errs[0] != nil {
		t.Errorf("the leader's write: %v", errs[0])
	}
	for _, err := range errs[1:] {
		if err == nil || !strings.Contains(err.Error(), "closed") {
			t.Errorf("a write queued at Close: %v, want the store closed", err)
		}
	}
	if err := sqlstore.Write(context.Background(), s, insert(30)); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("a write after Close: %v, want the store closed", err)
	}
	if ids := stored(t, path); !ids[20] || len(ids) != 1 {
		t.Errorf("stored %v; want 20 alone", ids)
	}
}

// panicky panics, once armed, when a group commit is reported: a panic
// of the leader outside the callers' functions.
type panicky struct{ armed atomic.Bool }

func (p *panicky) ObserveStore(op string, _ time.Duration, _ error) {
	if op == "GroupCommit" && p.armed.CompareAndSwap(true, false) {
		panic("observer")
	}
}

// TestGroupLeaderPanic: a leader that panics after the commit answers the
// callers it took (their writes are stored) and passes the lead on: later
// writes do not wait forever.
func TestGroupLeaderPanic(t *testing.T) {
	s, path := openLeader(t)
	var obs panicky
	s.SetObserver(&obs)
	_, taken0 := sqlstore.Queued(s)
	release := holdWriteLock(t, path)
	obs.armed.Store(true)
	errs := make([]error, 3)
	panicked := make(chan any, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { panicked <- recover() }()
		errs[0] = sqlstore.Write(context.Background(), s, insert(40))
	}()
	waitQueued(t, s, 0, taken0+1)
	for i := 1; i < 3; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = sqlstore.Write(context.Background(), s, insert(40+i)) }()
		waitQueued(t, s, i, taken0+1)
	}
	release()
	wg.Wait()
	if r := <-panicked; r != "observer" {
		t.Errorf("the leader's panic: %v", r)
	}
	if errs[1] != nil || errs[2] != nil {
		t.Errorf("the others: %v", errs[1:])
	}
	done := make(chan error, 1)
	go func() { done <- sqlstore.Write(context.Background(), s, insert(50)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a write after the leader's panic never finished")
	}
	if ids := stored(t, path); !ids[40] || !ids[41] || !ids[42] || !ids[50] {
		t.Errorf("stored %v; want 40, 41, 42 and 50", ids)
	}
}

// TestGroupStress: many callers, some failing, some panicking, some
// giving up at random moments: every caller is answered, a nil answer
// means its write is stored and any other answer that it is not.
func TestGroupStress(t *testing.T) {
	s, path := openLeader(t)
	const n = 400
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if i%5 == 0 {
				c, cancel := context.WithTimeout(ctx, time.Duration(rand.IntN(2000))*time.Microsecond)
				defer cancel()
				ctx = c
			}
			errs[i] = sqlstore.Write(ctx, s, func(ctx context.Context, tx *sql.Tx) error {
				switch i % 7 {
				case 3:
					insert(i)(ctx, tx)
					return fmt.Errorf("failed %d", i)
				case 5:
					insert(i)(ctx, tx)
					panic(i)
				}
				return insert(i)(ctx, tx)
			})
		}()
	}
	wg.Wait()
	ids := stored(t, path)
	for i, err := range errs {
		if (err == nil) != ids[i] {
			t.Errorf("caller %d: answered %v, stored %v", i, err, ids[i])
		}
		if i%7 == 3 || i%7 == 5 {
			if err == nil {
				t.Errorf("caller %d should have failed", i)
			}
		} else if i%5 != 0 && err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
	if w, _ := sqlstore.Queued(s); w != 0 {
		t.Errorf("%d callers still queued", w)
	}
}

// TestGroupLoneFailure: a lone caller's write (run without a SAVEPOINT)
// that fails after changing rows leaves nothing behind, and the next
// write commits.
func TestGroupLoneFailure(t *testing.T) {
	s, path := openLeader(t)
	err := sqlstore.Write(context.Background(), s, func(ctx context.Context, tx *sql.Tx) error {
		if err := insert(60)(ctx, tx); err != nil {
			return err
		}
		return errors.New("refused")
	})
	if err == nil || err.Error() != "refused" {
		t.Fatalf("the failing write: %v, want its own error", err)
	}
	if err := sqlstore.Write(context.Background(), s, insert(61)); err != nil {
		t.Fatal(err)
	}
	if ids := stored(t, path); ids[60] || !ids[61] {
		t.Errorf("stored %v; want 61 alone", ids)
	}
}
