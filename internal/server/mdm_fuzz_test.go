package server

import (
	"bytes"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzJamfWebhook: Jamf's webhook body is untrusted input; only a
// SCEPChallenge event is accepted, and the note stored with the challenge
// is printable and bounded.
func FuzzJamfWebhook(f *testing.F) {
	for _, s := range []string{
		`{"webhook": {"id": 7, "webhookEvent": "SCEPChallenge"}, "event": {"device": {"serialNumber": "C02XJAMF01", "udid": "0000-UDID-1"}}}`,
		`{"webhook": {"webhookEvent": "ComputerAdded"}}`,
		`{"webhook": {"webhookEvent": "SCEPChallenge"}, "event": {"device": {"serialNumber": "\u001b[2J", "udid": "` + strings.Repeat("x", 300) + `"}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		note, err := parseJamfWebhook(bytes.NewReader(b))
		if err != nil {
			return
		}
		if !utf8.ValidString(note) || utf8.RuneCountInString(note) > len("jamf serial= udid=")+128 || strings.ContainsFunc(note, unicode.IsControl) {
			t.Fatalf("note %q from %q", note, b)
		}
		if !bytes.Contains(b, []byte("SCEPChallenge")) && !bytes.Contains(b, []byte(`\u`)) {
			t.Fatalf("accepted without a SCEPChallenge event: %q", b)
		}
	})
}
