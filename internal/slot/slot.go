// Package slot lets a request give back the server's processing slot it
// holds while it waits on something that is not this server's work (an
// upstream CA answering over the network), and take it again after: the
// slots bound CPU-bound work, not waiting.
package slot

import "context"

type key struct{}

// held is what a context carries: the request's slot.
type held struct {
	yield func() (resume func())
	busy  func() bool
}

// With returns ctx carrying yield, which gives the request's slot back and
// returns how to take it again, and busy, which reports whether other
// requests wait for a slot (nil: never).
func With(ctx context.Context, yield func() (resume func()), busy func() bool) context.Context {
	return context.WithValue(ctx, key{}, held{yield: yield, busy: busy})
}

// Yield gives back the slot ctx carries, if any, and returns the function
// that takes it again (which waits for a free one). Without a slot both
// are no-ops. Call them from the request's own goroutine.
func Yield(ctx context.Context) (resume func()) {
	if h, ok := ctx.Value(key{}).(held); ok {
		return h.yield()
	}
	return func() {}
}

// Busy reports whether other requests wait for a slot, so that a slot
// given back (Yield) goes to work at once: waiting then costs the server
// no throughput. False without a slot.
func Busy(ctx context.Context) bool {
	h, ok := ctx.Value(key{}).(held)
	return ok && h.busy != nil && h.busy()
}
