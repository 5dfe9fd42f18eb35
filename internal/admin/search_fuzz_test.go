package admin

import (
	"strings"
	"testing"
)

// FuzzSerialPrefixes: any text a search box or query sends is either
// refused or read as lower-case hex prefixes without leading zeros, safe
// for a LIKE pattern.
func FuzzSerialPrefixes(f *testing.F) {
	for _, s := range []string{"4F:2A:9C", "4f 2a 9c", "0x00AB", "123456", "", "0x", "zz", "00", "4f-2a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := SerialPrefixes(s)
		if err != nil {
			return
		}
		if len(ps) == 0 || len(ps) > 2 {
			t.Fatalf("SerialPrefixes(%q) = %v", s, ps)
		}
		for _, p := range ps {
			if p == "" || strings.Trim(p, "0123456789abcdef") != "" || (len(p) > 1 && p[0] == '0') {
				t.Fatalf("SerialPrefixes(%q) = %v: not lower-case hex without leading zeros", s, ps)
			}
		}
	})
}

// FuzzDecodeCursor: a cursor from a client is refused or names a key
// that encodes back to a cursor naming the same key.
func FuzzDecodeCursor(f *testing.F) {
	f.Add("")
	f.Add("bm90LWEtY3Vyc29y")
	f.Add("MjAyNi0wNS0wNlQwNzowODowOS4xMjM0NTY3ODlaIGEw")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := DecodeCursor(s)
		if err != nil || k.IsZero() {
			return
		}
		again, err := DecodeCursor(EncodeCursor(k))
		if err != nil || !again.Created.Equal(k.Created) || again.Serial != k.Serial {
			t.Fatalf("cursor %q: %+v, round trip %+v %v", s, k, again, err)
		}
	})
}
