// Package slot lets a request give back the server's processing slot it
// holds while it waits on something that is not this server's work (an
// upstream CA answering over the network), and take it again after: the
// slots bound CPU-bound work, not waiting.
package slot

import "context"

type key struct{}

// With returns ctx carrying yield, which gives the request's slot back and
// returns how to take it again.
func With(ctx context.Context, yield func() (resume func())) context.Context {
	return context.WithValue(ctx, key{}, yield)
}

// Yield gives back the slot ctx carries, if any, and returns the function
// that takes it again (which waits for a free one). Without a slot both
// are no-ops. Call them from the request's own goroutine.
func Yield(ctx context.Context) (resume func()) {
	if y, ok := ctx.Value(key{}).(func() func()); ok {
		return y()
	}
	return func() {}
}
