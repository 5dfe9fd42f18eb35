// Package ratelimit holds the two limiters scepd puts in front of things an
// attacker can repeat: a sliding window of failures per key (guessing
// challenges or MDM credentials) and token buckets per key (minting
// one-time challenges). Both are per process: N replicas allow N times the
// budget, which the documentation states.
package ratelimit

import (
	"math"
	"net"
	"strconv"
	"sync"
	"time"
)

// maxKeys bounds memory under a flood of distinct keys (addresses).
const maxKeys = 100000

// Window counts failures per key in a sliding window.
type Window struct {
	max    int
	window time.Duration

	mu   sync.Mutex
	hits map[string][]time.Time
}

// NewWindow allows max failures per key within window; max <= 0 disables
// the limit (a nil *Window is disabled too).
func NewWindow(max int, window time.Duration) *Window {
	return &Window{max: max, window: window, hits: map[string][]time.Time{}}
}

// Max is the number of failures that locks a key out.
func (l *Window) Max() int { return l.max }

// Span is the window failures are counted over.
func (l *Window) Span() time.Duration { return l.window }

// Blocked reports whether key has used up its failures.
func (l *Window) Blocked(key string, now time.Time) bool {
	if l == nil || l.max <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.prune(key, now)) >= l.max
}

// Fail counts a failure; it reports true when this one used up the budget
// (once per lockout, so the caller can audit and count the lockout).
func (l *Window) Fail(key string, now time.Time) bool {
	if l == nil || l.max <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hits[key] = append(l.prune(key, now), now)
	locked := len(l.hits[key]) == l.max
	if len(l.hits) > maxKeys {
		for k := range l.hits {
			if len(l.prune(k, now)) == 0 {
				delete(l.hits, k)
			}
		}
	}
	return locked
}

func (l *Window) prune(key string, now time.Time) []time.Time {
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

// Host is the client a "host:port" remote address counts as: limits apply
// to a client, not to one of its connections. An IPv6 address counts as
// its /64: one subscriber or host usually holds a whole /64 and can walk
// through its 2^64 addresses, so per-address windows would never fill.
// An IPv4-mapped IPv6 address is its IPv4 address.
func Host(remote string) string {
	h := remote
	if host, _, err := net.SplitHostPort(remote); err == nil {
		h = host
	}
	ip := net.ParseIP(h)
	if ip == nil || ip.To4() != nil {
		if ip != nil {
			return ip.To4().String()
		}
		return h
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// RetryAfter is the value of an HTTP Retry-After header for a wait of d:
// whole seconds, rounded up, at least one.
func RetryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}
