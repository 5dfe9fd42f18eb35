package storetest

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/scepd/scepd/internal/store"
)

// Announcing is a store that counts the writes announced to it
// (store.Store.Expect) and the announcements settled, each once however
// often its done is called.
type Announcing struct {
	store.Store
	Made, Settled atomic.Int64
}

func (a *Announcing) Expect(ctx context.Context) (context.Context, func()) {
	ctx, done := a.Store.Expect(ctx)
	a.Made.Add(1)
	var once sync.Once
	return ctx, func() {
		once.Do(func() { a.Settled.Add(1) })
		done()
	}
}

// Open is the number of announcements not settled yet.
func (a *Announcing) Open() int64 { return a.Made.Load() - a.Settled.Load() }
