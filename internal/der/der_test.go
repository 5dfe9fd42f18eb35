package der

import (
	"bytes"
	"encoding/asn1"
	"math"
	"strconv"
	"testing"
)

// TestAppendLength: the length octets of each length form, at its bounds,
// and LengthLen counts them.
func TestAppendLength(t *testing.T) {
	tests := []struct {
		l    uint64
		want []byte
	}{
		{0, []byte{0x00}},
		{1, []byte{0x01}},
		{0x7f, []byte{0x7f}},
		{0x80, []byte{0x81, 0x80}},
		{0xff, []byte{0x81, 0xff}},
		{0x100, []byte{0x82, 0x01, 0x00}},
		{0xffff, []byte{0x82, 0xff, 0xff}},
		{0x10000, []byte{0x83, 0x01, 0x00, 0x00}},
		{0xffffff, []byte{0x83, 0xff, 0xff, 0xff}},
		{0x1000000, []byte{0x84, 0x01, 0x00, 0x00, 0x00}},
		{math.MaxInt32, []byte{0x84, 0x7f, 0xff, 0xff, 0xff}},
		{math.MaxUint32, []byte{0x84, 0xff, 0xff, 0xff, 0xff}},
		{1 << 32, []byte{0x85, 0x01, 0x00, 0x00, 0x00, 0x00}},
		{1<<40 + 5, []byte{0x86, 0x01, 0x00, 0x00, 0x00, 0x00, 0x05}},
		{1 << 56, []byte{0x88, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}},
		{math.MaxInt64, []byte{0x88, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	}
	for _, tt := range tests {
		if tt.l > math.MaxInt {
			continue // a 32-bit int
		}
		l := int(tt.l)
		got := AppendLength([]byte{0xaa}, l)
		if !bytes.Equal(got, append([]byte{0xaa}, tt.want...)) {
			t.Errorf("AppendLength(%d) = %x, want %x", l, got[1:], tt.want)
		}
		if n := LengthLen(l); n != len(tt.want) {
			t.Errorf("LengthLen(%d) = %d, want %d", l, n, len(tt.want))
		}
	}
	if strconv.IntSize == 64 && LengthLen(math.MaxInt) != 9 {
		t.Errorf("LengthLen(MaxInt) = %d", LengthLen(math.MaxInt))
	}
}

// TestAppendLengthAsASN1: the length octets encoding/asn1 writes, for the
// lengths around each form's bounds that can be allocated here.
func TestAppendLengthAsASN1(t *testing.T) {
	for _, l := range []int{0, 1, 0x7f, 0x80, 0x81, 0xff, 0x100, 0x101, 0xffff, 0x10000, 0x10001} {
		enc, err := asn1.Marshal(asn1.RawValue{Tag: asn1.TagOctetString, Bytes: make([]byte, l)})
		if err != nil {
			t.Fatal(err)
		}
		if want := enc[1 : len(enc)-l]; !bytes.Equal(AppendLength(nil, l), want) || LengthLen(l) != len(want) {
			t.Errorf("%d: %x (%d octets), encoding/asn1 %x", l, AppendLength(nil, l), LengthLen(l), want)
		}
	}
}

// TestNegativeLength: a negative length panics rather than being written.
func TestNegativeLength(t *testing.T) {
	for _, f := range []func(){func() { AppendLength(nil, -1) }, func() { LengthLen(-1) }} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		}()
	}
}
