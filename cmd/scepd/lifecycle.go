package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// forceWait is how long, past the grace period, shutdown waits for what
// it cancelled (requests, loops, notifications) to return.
const forceWait = 5 * time.Second

// owner starts every goroutine `scepd serve` runs and stops them all, in
// order, before the store closes:
//
//  1. stop accepting and wait for the requests in flight, enrollments
//     included (http.Server.Shutdown);
//  2. cancel the background loops (CRL refresh, event dispatch, expiry
//     scan, profile refresh, pending expiry) and wait for them;
//  3. wait for what the requests left behind (outcome notifications);
//  4. close the store and the key token.
//
// The grace period bounds steps 1 to 3 together. Past it, requests'
// contexts and notifications are cancelled and each step gets forceWait
// more. Whatever still runs then keeps the store open: the process exits
// without closing it rather than close it under a writer.
type owner struct {
	log   *slog.Logger
	grace time.Duration
	force time.Duration // forceWait; shorter in tests

	loopCtx   context.Context
	stopLoops context.CancelFunc
	loops     errgroup.Group

	// reqCtx is the base of every request's context; cutOff cancels it
	// when the grace period is over.
	reqCtx  context.Context
	cutOff  context.CancelFunc
	servers []*http.Server
	serving errgroup.Group
	served  chan error
	active  tracker

	drains  []named[func(context.Context) error]
	closers []named[func() error]
	once    sync.Once
	err     error
}

type named[F any] struct {
	name string
	f    F
}

// newOwner returns an owner whose loops and requests outlive ctx (the
// signal's): they end when shutdown ends them, in order.
func newOwner(ctx context.Context, grace time.Duration, log *slog.Logger) *owner {
	o := &owner{log: log, grace: grace, force: forceWait, served: make(chan error, 2)}
	o.loopCtx, o.stopLoops = context.WithCancel(context.WithoutCancel(ctx))
	o.reqCtx, o.cutOff = context.WithCancel(context.WithoutCancel(ctx))
	return o
}

// goLoop runs a background loop until shutdown cancels its context.
func (o *owner) goLoop(name string, run func(ctx context.Context)) {
	o.loops.Go(func() error {
		run(o.loopCtx)
		o.log.Debug("background loop stopped", "loop", name)
		return nil
	})
}

// serve runs hs on ln (TLS when cert is set) until shutdown.
func (o *owner) serve(hs *http.Server, ln net.Listener, cert, key string) {
	hs.Handler = o.active.wrap(hs.Handler)
	hs.BaseContext = func(net.Listener) context.Context { return o.reqCtx }
	o.servers = append(o.servers, hs)
	o.serving.Go(func() error {
		var err error
		if cert != "" {
			err = hs.ServeTLS(ln, cert, key)
		} else {
			err = hs.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			select { // the first failure ends serving; others are moot
			case o.served <- fmt.Errorf("serving %s: %w", ln.Addr(), err):
			default:
			}
		}
		return nil
	})
}

// drain registers a wait for work the requests started, run after they
// and the loops have stopped; ctx bounds it.
func (o *owner) drain(name string, wait func(ctx context.Context) error) {
	o.drains = append(o.drains, named[func(context.Context) error]{name, wait})
}

// closeLast registers what shutdown closes once nothing runs any more,
// in reverse order of registration.
func (o *owner) closeLast(name string, close func() error) {
	o.closers = append(o.closers, named[func() error]{name, close})
}

// wait blocks until ctx ends (a signal) or a listener fails.
func (o *owner) wait(ctx context.Context) error {
	select {
	case err := <-o.served:
		return err
	case <-ctx.Done():
		return nil
	}
}

// shutdown stops everything in order (see owner) and then closes what
// closeLast registered. It runs once; later calls return its result.
func (o *owner) shutdown() error {
	o.once.Do(func() { o.err = o.stop() })
	return o.err
}

func (o *owner) stop() error {
	start := time.Now()
	graceCtx, cancelGrace := context.WithTimeout(context.Background(), o.grace)
	defer cancelGrace()
	hardCtx, cancelHard := context.WithTimeout(context.Background(), o.grace+o.force)
	defer cancelHard()
	// bound is the grace period while it lasts, then the forced wait.
	bound := func() context.Context {
		if graceCtx.Err() == nil {
			return graceCtx
		}
		return hardCtx
	}
	var errs []error
	clean := true

	// 1. Requests, enrollments included.
	if len(o.servers) > 0 {
		o.log.Info("shutting down: refusing new connections, waiting for requests in flight", "grace", o.grace.String())
	}
	// Every listener closes at once; each server then drains.
	var (
		drained sync.WaitGroup
		late    atomic.Bool
	)
	for _, hs := range o.servers {
		drained.Go(func() {
			switch err := hs.Shutdown(graceCtx); {
			case err != nil && graceCtx.Err() != nil:
				late.Store(true)
			case err != nil:
				o.log.Error("closing a listener failed", "addr", hs.Addr, "error", err.Error())
			}
		})
	}
	drained.Wait()
	if late.Load() {
		n := o.active.count()
		o.log.Warn("grace period over: cancelling the requests in flight", "in_flight", n)
		errs = append(errs, fmt.Errorf("grace period %v over with %d requests in flight", o.grace, n))
		o.cutOff()
		for _, hs := range o.servers {
			hs.Close()
		}
	}
	if err := o.active.wait(hardCtx); err != nil {
		clean = false
		errs = append(errs, fmt.Errorf("%d requests still running", o.active.count()))
	}
	if err := waitFor(hardCtx, o.serving.Wait); err != nil {
		clean = false
		errs = append(errs, errors.New("a listener did not stop"))
	}
	if len(o.servers) > 0 && clean {
		o.log.Info("requests drained")
	}

	// 2. Background loops.
	o.stopLoops()
	if err := waitFor(bound(), o.loops.Wait); err != nil {
		if err = waitFor(hardCtx, o.loops.Wait); err != nil {
			clean = false
			errs = append(errs, errors.New("background loops did not stop"))
		}
	}
	if clean {
		o.log.Info("background loops stopped")
	}

	// 3. What the requests left behind.
	for _, d := range o.drains {
		if err := d.f(bound()); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.name, err))
		} else {
			o.log.Debug("drained", "what", d.name)
		}
	}

	// 4. Nothing runs any more: close.
	if !clean {
		o.log.Error("shutdown incomplete: exiting without closing the store under what still runs", "elapsed", time.Since(start).String())
		return errors.Join(errs...)
	}
	for i := len(o.closers) - 1; i >= 0; i-- {
		c := o.closers[i]
		if err := c.f(); err != nil {
			errs = append(errs, fmt.Errorf("closing the %s: %w", c.name, err))
		} else {
			o.log.Debug("closed", "what", c.name)
		}
	}
	o.cutOff() // releases the requests' base context
	o.log.Info("shutdown complete", "elapsed", time.Since(start).Round(time.Millisecond).String())
	return errors.Join(errs...)
}

// waitFor runs wait until it returns or ctx ends. On ctx's end the
// goroutine stays behind; the process is about to exit.
func waitFor(ctx context.Context, wait func() error) error {
	done := make(chan struct{})
	go func() {
		wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tracker counts the requests being handled, so that shutdown can wait
// for them also when the grace period cut them off (http.Server.Close
// does not wait for handlers).
type tracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0
}

func (t *tracker) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.mu.Lock()
		if t.n == 0 {
			t.idle = make(chan struct{})
		}
		t.n++
		t.mu.Unlock()
		defer func() {
			t.mu.Lock()
			if t.n--; t.n == 0 {
				close(t.idle)
			}
			t.mu.Unlock()
		}()
		h.ServeHTTP(w, r)
	})
}

func (t *tracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// wait returns once no request is being handled, or ctx's error.
func (t *tracker) wait(ctx context.Context) error {
	t.mu.Lock()
	if t.n == 0 {
		t.mu.Unlock()
		return nil
	}
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
