package audit

import (
	"testing"
)

// FuzzParseCheckpoint feeds ParseCheckpoint what an operator may hand
// `scepd audit verify --checkpoint`: a checkpoint file, or a copy an event
// sink received (a webhook body, an export line), possibly tampered with.
// It never panics, and what it accepts names a signed position.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add([]byte(`{"seq":5,"head":"aa","time":"2026-11-29T18:00:00Z","key_id":"k","public_key":"p","signature":"s"}`))
	f.Add([]byte(`{"type":"audit.checkpoint","details":{"seq":"7","head":"bb","time":"2026-11-29T18:00:00.5Z","key_id":"k","public_key":"p","signature":"s"}}`))
	f.Add([]byte(`{"details":{"signature":"s","seq":"-1"}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCheckpoint(b)
		if err != nil {
			return
		}
		if c.Seq <= 0 || c.Signature == "" {
			t.Fatalf("ParseCheckpoint(%q) = %+v without an error", b, c)
		}
	})
}
