package events

import (
	"context"
	"sync/atomic"
	"testing"
)

// advanceCounter counts cursor writes.
type advanceCounter struct {
	Store
	advances atomic.Int32
}

func (c *advanceCounter) AdvanceSink(ctx context.Context, name, holder string, seq int64) error {
	c.advances.Add(1)
	return c.Store.AdvanceSink(ctx, name, holder, seq)
}

// TestDispatcherCursorPerBatch: a page of events costs one cursor write,
// not one per event, and every event arrives once, in order.
func TestDispatcherCursorPerBatch(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	cs := &advanceCounter{Store: s}
	var got []string
	route := Route{Name: "log", Sink: SinkFunc(func(_ context.Context, e Event) error { got = append(got, e.Serial); return nil })}
	d := &Dispatcher{Store: cs, Routes: []Route{route}, Holder: "a", Log: quiet()}
	d.Step(ctx, route) // creates the sink at the newest event
	const n = 25
	for i := range n {
		audit(t, s, "enroll", "issued", "certificate:"+string(rune('a'+i)), nil)
	}
	if k, err := d.Step(ctx, route); k != n || err != nil {
		t.Fatalf("Step = %d, %v", k, err)
	}
	if w := cs.advances.Load(); w != 1 {
		t.Errorf("%d cursor writes for a batch of %d events, want 1", w, n)
	}
	if len(got) != n || got[0] != "a" || got[n-1] != string(rune('a'+n-1)) {
		t.Fatalf("delivered %v", got)
	}
	// Nothing new: no write.
	d.Step(ctx, route)
	if w := cs.advances.Load(); w != 1 {
		t.Errorf("%d cursor writes after an idle step, want 1", w)
	}
}

// TestDispatcherCrashMidBatchRedelivers: a replica that dies in the
// middle of a page (here: its context ends while the sink holds the
// fourth event) has not moved the cursor; the replica that takes the sink
// over delivers the whole page, so each event arrives at least once.
func TestDispatcherCrashMidBatchRedelivers(t *testing.T) {
	s := openStore(t)
	crashCtx, crash := context.WithCancel(context.Background())
	var first []string
	dying := Route{Name: "hook", Sink: SinkFunc(func(ctx context.Context, e Event) error {
		first = append(first, e.Serial)
		if len(first) == 4 {
			crash()
			return ctx.Err()
		}
		return nil
	})}
	a := &Dispatcher{Store: s, Routes: []Route{dying}, Holder: "a", Log: quiet()}
	a.Step(context.Background(), dying)
	for _, serial := range []string{"01", "02", "03", "04", "05", "06"} {
		audit(t, s, "enroll", "issued", "certificate:"+serial, nil)
	}
	if _, err := a.Step(crashCtx, dying); err == nil {
		t.Fatal("the crashed step reported no error")
	}
	var second []string
	next := Route{Name: "hook", Sink: SinkFunc(func(_ context.Context, e Event) error { second = append(second, e.Serial); return nil })}
	// The same holder name after a restart (hostname and a new PID would
	// wait for the lease to expire; the cursor is what matters here).
	b := &Dispatcher{Store: s, Routes: []Route{next}, Holder: "a", Log: quiet()}
	if n, err := b.Step(context.Background(), next); n != 6 || err != nil {
		t.Fatalf("Step after the crash = %d, %v", n, err)
	}
	if len(first) != 4 || len(second) != 6 || second[0] != "01" || second[5] != "06" {
		t.Fatalf("before the crash %v, after %v; want 4 then all 6 again", first, second)
	}
}

// TestCaughtUp: the dispatcher steps again at once only after a full
// page; after a partial one (caught up with the log) it waits for more
// to gather.
func TestCaughtUp(t *testing.T) {
	for _, tt := range []struct {
		n    int
		err  error
		want bool
	}{{0, nil, true}, {1, nil, true}, {pageSize - 1, nil, true}, {pageSize, nil, false}, {pageSize, errLeaseLost, true}} {
		if got := caughtUp(tt.n, tt.err); got != tt.want {
			t.Errorf("caughtUp(%d, %v) = %v", tt.n, tt.err, got)
		}
	}
}
