package ca

import (
	"bytes"
	"crypto/rand"
	"math/big"
	"testing"
	"time"
)

func TestSerialLayout(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	random := bytes.Repeat([]byte{0xff}, 10)
	got, err := serialAt(bytes.NewReader(random), at)
	if err != nil {
		t.Fatal(err)
	}
	want := new(big.Int).Lsh(big.NewInt(at.UnixMilli()), 80)
	want.Or(want, new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 80), big.NewInt(1)))
	if got.Cmp(want) != 0 {
		t.Fatalf("serial %x, want %x (milliseconds, then the 80 random bits)", got, want)
	}
	if _, err := serialAt(bytes.NewReader(random[:9]), at); err == nil {
		t.Fatal("a short random read gave a serial")
	}
	if _, err := serialAt(rand.Reader, time.Unix(-1, 0)); err == nil {
		t.Fatal("a clock before 1970 gave a serial")
	}
}

// Serials issued later sort after earlier ones, as numbers and as the hex
// text the store keys certificates by, whatever their random part; within
// one millisecond they differ.
func TestSerialsGrowWithTime(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var prev *big.Int
	seen := map[string]bool{}
	for i := range 2000 {
		s, err := serialAt(rand.Reader, at.Add(time.Duration(i/4)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if s.Sign() <= 0 || s.BitLen() > 159 || len(s.Bytes()) > 20 {
			t.Fatalf("serial %x out of RFC 5280's range", s)
		}
		if seen[s.Text(16)] {
			t.Fatalf("serial %x drawn twice", s)
		}
		seen[s.Text(16)] = true
		if prev != nil && i%4 == 0 {
			if s.Cmp(prev) <= 0 || s.Text(16) <= prev.Text(16) {
				t.Fatalf("serial %x a millisecond later sorts before %x", s, prev)
			}
		}
		prev = s
	}
	now, err := NewSerial(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if ms := new(big.Int).Rsh(now, 80).Int64(); time.Since(time.UnixMilli(ms)).Abs() > time.Minute {
		t.Fatalf("NewSerial's time part %d is not now", ms)
	}
}
