package ratelimit

import (
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	l := NewWindow(3, time.Minute)
	now := time.Unix(1000, 0)
	for i := range 3 {
		if l.Blocked("a", now) {
			t.Fatalf("blocked after %d failures", i)
		}
		if locked := l.Fail("a", now); locked != (i == 2) {
			t.Fatalf("failure %d: locked = %v", i+1, locked)
		}
	}
	if !l.Blocked("a", now) || l.Blocked("b", now) {
		t.Fatal("the third failure must block a, and only a")
	}
	if l.Blocked("a", now.Add(61*time.Second)) {
		t.Fatal("still blocked after the window")
	}
	var off *Window
	if off.Blocked("a", now) || off.Fail("a", now) || NewWindow(0, time.Minute).Fail("a", now) {
		t.Fatal("a disabled window blocks")
	}
}

func TestBuckets(t *testing.T) {
	b := NewBuckets(1, 2)
	now := time.Unix(1000, 0)
	for i := range 2 {
		if ok, _ := b.Allow("p", now); !ok {
			t.Fatalf("burst token %d refused", i)
		}
	}
	ok, wait := b.Allow("p", now)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("third at once: %v, wait %v; want refused with a wait up to 1s", ok, wait)
	}
	if ok, _ := b.Allow("q", now); !ok {
		t.Fatal("another key shares the bucket")
	}
	if ok, _ := b.Allow("p", now.Add(time.Second)); !ok {
		t.Fatal("no token after a second")
	}
	var off *Buckets
	if ok, _ := off.Allow("p", now); !ok {
		t.Fatal("a nil limiter refuses")
	}
}

func TestHost(t *testing.T) {
	for in, want := range map[string]string{"10.0.0.1:443": "10.0.0.1", "[2001:db8::1]:80": "2001:db8::/64", "unix": "unix",
		"[2001:db8:0:7:a:b:c:d]:5": "2001:db8:0:7::/64", "2001:db8:0:7::ffff": "2001:db8:0:7::/64", "[::ffff:192.0.2.7]:9": "192.0.2.7", "[fe80::1%eth0]:1": "fe80::1%eth0"} {
		if got := Host(in); got != want {
			t.Errorf("Host(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "1", 200 * time.Millisecond: "1", 1200 * time.Millisecond: "2", 15 * time.Minute: "900"} {
		if got := RetryAfter(d); got != want {
			t.Errorf("RetryAfter(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestWindowIPv6Prefix: the addresses of one IPv6 /64 share a failure
// window, so walking through them does not escape a lockout.
func TestWindowIPv6Prefix(t *testing.T) {
	l := NewWindow(3, time.Minute)
	now := time.Unix(1000, 0)
	for i, a := range []string{"[2001:db8:0:1::1]:1000", "[2001:db8:0:1::2]:1001", "[2001:db8:0:1:ffff::3]:1002"} {
		if l.Fail("p|"+Host(a), now) != (i == 2) {
			t.Fatalf("failure %d from %s", i+1, a)
		}
	}
	if !l.Blocked("p|"+Host("[2001:db8:0:1::99]:2000"), now) {
		t.Error("another address of the same /64 is not locked out")
	}
	if l.Blocked("p|"+Host("[2001:db8:0:2::1]:2000"), now) {
		t.Error("the next /64 is locked out too")
	}
}
