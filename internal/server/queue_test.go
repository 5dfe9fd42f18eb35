package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/slot"
)

// TestQueueBound: with every slot taken, MaxQueue requests wait for one;
// the next is refused at once, and a waiter gets the slot when it frees.
func TestQueueBound(t *testing.T) {
	s, err := New(Options{MaxConcurrent: 1, MaxQueue: 2, QueueWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if !s.acquire(ctx) {
		t.Fatal("the free slot was refused")
	}
	got := make(chan bool, 2)
	for range 2 {
		go func() { got <- s.acquire(ctx) }()
	}
	for s.waiting.Load() != 2 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	if s.acquire(ctx) {
		t.Fatal("a request beyond the queue got a slot")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("the refusal beyond the queue was not immediate")
	}
	if s.Overloaded() != 1 {
		t.Fatalf("overloaded = %d, want 1", s.Overloaded())
	}
	s.release()
	if !<-got {
		t.Fatal("a waiter was refused when the slot freed")
	}
	s.release()
	if !<-got {
		t.Fatal("the second waiter was refused")
	}
	s.release()
	if s.waiting.Load() != 0 {
		t.Fatalf("%d still counted as waiting", s.waiting.Load())
	}
}

// TestSlotYield: a request waiting on an upstream gives its slot back, so
// another gets it; it takes a slot again before it goes on.
func TestSlotYield(t *testing.T) {
	s, err := New(Options{MaxConcurrent: 1, MaxQueue: 1, QueueWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !s.acquire(context.Background()) {
		t.Fatal("the free slot was refused")
	}
	ctx := s.yieldable(context.Background())
	resume := slot.Yield(ctx)
	if !s.acquire(context.Background()) {
		t.Fatal("the yielded slot was not free for another request")
	}
	back := make(chan struct{})
	go func() { resume(); close(back) }()
	s.release() // the other request ends: resume gets the slot
	<-back
	s.releaseHeld(ctx)
	if n := len(s.slots); n != 0 {
		t.Fatalf("%d slots still taken", n)
	}
	// Yielding twice, or releasing a yielded slot, takes nothing twice.
	ctx = s.yieldable(context.Background())
	s.slots <- struct{}{}
	slot.Yield(ctx)
	slot.Yield(ctx)()
	s.releaseHeld(ctx)
	if n := len(s.slots); n != 0 {
		t.Fatalf("%d slots taken after yield, yield, resume, release", n)
	}
}

// TestResumeGoesFirst: a request taking its slot again (after waiting for
// a commit or an upstream) gets the next released slot before a request
// that has not started, so few requests are in progress at once.
func TestResumeGoesFirst(t *testing.T) {
	s, err := New(Options{MaxConcurrent: 1, MaxQueue: 4, QueueWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	ctx := s.yieldable(bg)
	if !s.acquire(bg) {
		t.Fatal("the free slot was refused")
	}
	resume := slot.Yield(ctx) // A gives its slot back...
	if !s.acquire(bg) {       // ...which B takes
		t.Fatal("the yielded slot was not free")
	}
	order := make(chan string, 2)
	go func() { // C, a new request, waits first
		if s.acquire(bg) {
			order <- "new"
		}
	}()
	for s.waiting.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	resumed := make(chan struct{})
	go func() { resume(); order <- "resumed"; close(resumed) }() // then A
	for s.waitingToResume() != 1 {                               // A waits for a slot to be handed over
		time.Sleep(time.Millisecond)
	}
	s.release() // B is done
	if got := <-order; got != "resumed" {
		t.Fatalf("the released slot went to %s, want the resumed request", got)
	}
	<-resumed
	s.releaseHeld(ctx) // A is done: C gets the slot
	if got := <-order; got != "new" {
		t.Fatalf("then %s", got)
	}
	s.release()
}

// TestOnWorker: the work of a PKIOperation runs on a goroutine of its
// own; what it sets is seen after it, and a panic in it is raised again in the
// request's goroutine with the same value (net/http recovers it there, and
// http.ErrAbortHandler keeps its meaning).
func TestOnWorker(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	s.onWorker(func() { got = "CertRep" })
	if got != "CertRep" {
		t.Fatalf("onWorker left %q", got)
	}
	defer func() {
		if p := recover(); p != http.ErrAbortHandler {
			t.Fatalf("recovered %v, want http.ErrAbortHandler", p)
		}
	}()
	s.onWorker(func() { panic(http.ErrAbortHandler) })
	t.Fatal("the panic did not reach the caller")
}

// workerPanics panics with v: a function of its own, for its name in a
// stack.
//
//go:noinline
func workerPanics(v any) { panic(v) }

// TestOnWorkerLogsPanic: a panic in the work is raised again in the
// request's goroutine with the same value, and logged at ERROR with the
// value and the stack where it was raised; http.ErrAbortHandler is raised
// again and not logged.
func TestOnWorkerLogsPanic(t *testing.T) {
	var buf bytes.Buffer
	s, err := New(Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	value := errors.New("broken invariant")
	if p := recovered(func() { s.onWorker(func() { workerPanics(value) }) }); p != value {
		t.Fatalf("recovered %v, want %v", p, value)
	}
	log := buf.String()
	for _, want := range []string{"level=ERROR", "broken invariant", "server.workerPanics", "server.TestOnWorkerLogsPanic"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log has no %q:\n%s", want, log)
		}
	}
	buf.Reset()
	if p := recovered(func() { s.onWorker(func() { workerPanics(http.ErrAbortHandler) }) }); p != http.ErrAbortHandler {
		t.Fatalf("recovered %v, want http.ErrAbortHandler", p)
	}
	if buf.Len() != 0 {
		t.Errorf("http.ErrAbortHandler logged: %s", buf.String())
	}
}

// TestOnWorkerGoexit: a runtime.Goexit in the work ends the request's
// goroutine as it would have ended it there: deferred calls run, nothing
// panics or is logged, and the caller does not go on.
func TestOnWorkerGoexit(t *testing.T) {
	var buf bytes.Buffer
	s, err := New(Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan string)
	go func() {
		how := "runtime.Goexit"
		defer func() {
			if p := recover(); p != nil {
				how = fmt.Sprintf("panic: %v", p)
			}
			ended <- how
		}()
		s.onWorker(runtime.Goexit)
		how = "returned"
	}()
	if how := <-ended; how != "runtime.Goexit" {
		t.Fatalf("the caller ended with %s, want runtime.Goexit", how)
	}
	if buf.Len() != 0 {
		t.Errorf("runtime.Goexit logged: %s", buf.String())
	}
}

// recovered runs f and returns what it panicked with.
func recovered(f func()) (p any) {
	defer func() { p = recover() }()
	f()
	return nil
}
