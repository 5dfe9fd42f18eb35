package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlite"
)

// TestRefreshProfiles: a replica loads what other replicas changed. A
// change committed between the fingerprint taken before the first load
// and the loop's first look is loaded (it was the loop's baseline, never
// loaded), and a reload that fails is tried again until one succeeds (it
// was marked done, and the replica served stale profiles, a retired
// challenge among them, until something else changed).
func TestRefreshProfiles(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "scepd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	loaded, err := profilesFingerprint(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	// Another replica adds a CA after this one took its fingerprint and
	// loaded.
	if err := st.CreateCA(ctx, store.CA{ID: "other", CertDER: []byte{1}, KeyRef: "file:x", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls := 0
	reloaded := make(chan int, 10)
	reload := func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		reloaded <- calls
		if calls == 1 {
			return errors.New("canceling statement due to statement timeout")
		}
		return nil
	}
	var log bytes.Buffer
	var logMu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		refreshProfiles(ctx, st, reload, slog.New(slog.NewTextHandler(&lockedWriter{w: &log, mu: &logMu}, nil)), 5*time.Millisecond, loaded)
	}()
	for want := 1; want <= 2; want++ {
		select {
		case n := <-reloaded:
			if n != want {
				t.Fatalf("reload call %d, want %d", n, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("reload call %d never came (the change after the baseline, or the retry after a failure, was not loaded)", want)
		}
	}
	// Loaded now: no further reload while nothing changes.
	select {
	case n := <-reloaded:
		t.Fatalf("reload call %d with nothing changed", n)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	<-done
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(log.String(), "reloading profiles failed") || !strings.Contains(log.String(), "profiles reloaded") {
		t.Errorf("log %q, want the failure and the reload", log.String())
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestQueueWaitWithinAnswerDeadline: a queue wait at or past the answer
// deadline (counted from a request's arrival) would leave a queued
// request no time to be decided: refused at start.
func TestQueueWaitWithinAnswerDeadline(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"serve", "--queue-wait", "25s", "--data", filepath.Join(t.TempDir(), "data")}, &out, &errb); code != 2 ||
		!strings.Contains(errb.String(), "--queue-wait 25s: want less than 25s") {
		t.Fatalf("exit %d, %q; want 2 and the reason", code, errb.String())
	}
}

// TestRefreshBacksOff: a reload that keeps failing (a profile this
// replica cannot load) is tried less and less often, not at every tick:
// each try unseals keys and logs an error.
func TestRefreshBacksOff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "scepd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var mu sync.Mutex
	calls := 0
	reload := func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return errors.New("profile p: SCEPD_SECRET_X is not set")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		refreshProfiles(ctx, st, reload, slog.New(slog.DiscardHandler), 2*time.Millisecond, "never loaded")
	}()
	time.Sleep(300 * time.Millisecond) // 150 ticks
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if calls == 0 || calls > 10 {
		t.Fatalf("%d reloads in 150 ticks of a reload that keeps failing, want a few (backing off)", calls)
	}
}
