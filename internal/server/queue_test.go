package server

import (
	"context"
	"testing"
	"time"
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
