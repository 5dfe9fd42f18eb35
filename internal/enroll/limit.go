package enroll

import (
	"sync"
	"time"
)

// failureLimit counts failed challenge attempts per profile and client
// address in a sliding window. It is per replica (documented): an attacker
// spreading guesses over N replicas gets N times the budget, still far
// below what guessing a 192-bit or argon2-hashed secret would need.
type failureLimit struct {
	max    int
	window time.Duration

	mu   sync.Mutex
	hits map[string][]time.Time
}

func newFailureLimit(max int, window time.Duration) *failureLimit {
	return &failureLimit{max: max, window: window, hits: map[string][]time.Time{}}
}

// blocked reports whether key has used up its failures.
func (l *failureLimit) blocked(key string, now time.Time) bool {
	if l == nil || l.max <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.prune(key, now)) >= l.max
}

// fail counts a failure; it reports true when this one used up the
// budget (once per lockout, for the repeated-failures event).
func (l *failureLimit) fail(key string, now time.Time) bool {
	if l == nil || l.max <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hits[key] = append(l.prune(key, now), now)
	locked := len(l.hits[key]) == l.max
	if len(l.hits) > 100000 { // bound memory under a flood of addresses
		for k := range l.hits {
			if len(l.prune(k, now)) == 0 {
				delete(l.hits, k)
			}
		}
	}
	return locked
}

func (l *failureLimit) prune(key string, now time.Time) []time.Time {
	h := l.hits[key]
	i := 0
	for i < len(h) && now.Sub(h[i]) > l.window {
		i++
	}
	h = h[i:]
	if len(h) == 0 {
		delete(l.hits, key)
		return nil
	}
	l.hits[key] = h
	return h
}
