package server

import (
	"fmt"
	"testing"
	"time"
)

// TestURLWarningsThrottle: a path is warned about once per window, at most
// warnBurst paths per window; the next line logged counts what was not,
// and the throttle never holds more than warnBurst paths.
func TestURLWarningsThrottle(t *testing.T) {
	var u urlWarnings
	t0 := time.Now()
	if ok, n := u.allow("/a", t0); !ok || n != 0 {
		t.Fatalf("first /a: %v %d", ok, n)
	}
	if ok, _ := u.allow("/a", t0.Add(warnWindow-time.Second)); ok {
		t.Fatal("/a twice within the window")
	}
	for i := 1; i < warnBurst; i++ {
		ok, n := u.allow(fmt.Sprintf("/p%d", i), t0.Add(time.Second))
		if !ok {
			t.Fatalf("path %d of %d refused", i+1, warnBurst)
		}
		want := 0
		if i == 1 {
			want = 1 // the second /a
		}
		if n != want {
			t.Fatalf("path %d: suppressed %d, want %d", i+1, n, want)
		}
	}
	for i := range 1000 {
		if ok, _ := u.allow(fmt.Sprintf("/scan%d", i), t0.Add(2*time.Second)); ok {
			t.Fatalf("path %d beyond the burst logged", warnBurst+i+1)
		}
	}
	if len(u.paths) > warnBurst {
		t.Fatalf("%d paths held, want at most %d", len(u.paths), warnBurst)
	}
	ok, n := u.allow("/a", t0.Add(warnWindow))
	if !ok || n != 1000 {
		t.Fatalf("/a in the next window: %v, suppressed %d, want true, 1000", ok, n)
	}
	if ok, n := u.allow("/b", t0.Add(warnWindow)); !ok || n != 0 {
		t.Fatalf("/b after a line was logged: %v, suppressed %d, want true, 0", ok, n)
	}
}
