package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Buckets is a token bucket per key: on average perSecond events, bursts
// of up to burst.
type Buckets struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// NewBuckets returns buckets of perSecond tokens and the given burst;
// perSecond <= 0 disables the limit (a nil *Buckets is disabled too).
func NewBuckets(perSecond float64, burst int) *Buckets {
	if burst < 1 {
		burst = 1
	}
	return &Buckets{limit: rate.Limit(perSecond), burst: burst, buckets: map[string]*rate.Limiter{}}
}

// Allow takes a token from key's bucket. When none is left it reports false
// and how long until one is.
func (b *Buckets) Allow(key string, now time.Time) (bool, time.Duration) {
	if b == nil || b.limit <= 0 {
		return true, 0
	}
	b.mu.Lock()
	l, ok := b.buckets[key]
	if !ok {
		if len(b.buckets) >= maxKeys {
			for k, v := range b.buckets {
				if v.TokensAt(now) >= float64(b.burst) { // full again: forget it
					delete(b.buckets, k)
				}
			}
		}
		l = rate.NewLimiter(b.limit, b.burst)
		b.buckets[key] = l
	}
	b.mu.Unlock()
	r := l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
