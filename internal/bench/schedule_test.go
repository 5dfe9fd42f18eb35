package bench

import (
	"testing"
	"time"
)

// TestSchedule: 10,000 arrivals at 10000/m are evenly spaced (6 ms apart)
// and all due within the minute; nothing is timed.
func TestSchedule(t *testing.T) {
	rate, err := ParseRate("10000/m")
	if err != nil {
		t.Fatal(err)
	}
	due := Schedule(rate)
	const total = 10000
	if due(0) != 0 {
		t.Fatalf("the first request is due at %v, want at once", due(0))
	}
	for i := 1; i < total; i++ {
		gap := due(i) - due(i-1)
		if gap < 6*time.Millisecond-time.Microsecond || gap > 6*time.Millisecond+time.Microsecond {
			t.Fatalf("request %d due %v after the one before, want 6ms", i, gap)
		}
	}
	if last := due(total - 1); last >= time.Minute || last < 59*time.Second {
		t.Fatalf("the last of %d requests is due at %v, want just under a minute", total, last)
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"200": 200, "200/s": 200, "600/m": 10, "600/min": 10, "36000/h": 10, " 5/s ": 5} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-3/s", "fast", "10/d", "1e9"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}
