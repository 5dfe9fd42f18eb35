package challenge

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode"
	"unicode/utf8"
)

func checkPrintable(t *testing.T, what, s string, max int) {
	t.Helper()
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		t.Fatalf("%s %q: not valid UTF-8 or longer than %d", what, s, max)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			t.Fatalf("%s %q holds a control character", what, s)
		}
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain":           "plain",
		"line\nbreak\x1b": "line?break?",
		"bad \xff utf8":   "bad ? utf8",
		"äöü€":            "äöü€",
	} {
		if got := Printable(in, 100); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Printable("abcdef", 3); got != "abc" {
		t.Errorf("cut to 3: %q", got)
	}
}

// FuzzWebhookAnswer: the operator's service's answer is untrusted input; a
// verdict needs a boolean "allow", and the reason is always printable.
func FuzzWebhookAnswer(f *testing.F) {
	for _, s := range []string{`{"allow": true}`, `{"allow": false, "reason": "not on the list"}`, `{"allow": "yes"}`, `{}`, `[true]`,
		`{"allow": true, "reason": "\u0000\u001b[31m red"}`, `{"allow": false}{"allow": true}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := parseWebhookAnswer(bytes.NewReader(b))
		if err != nil {
			return
		}
		checkPrintable(t, "reason", a.Reason, 200)
		if a.Allow {
			var v struct{ Allow any }
			if json.NewDecoder(bytes.NewReader(b)).Decode(&v) != nil || v.Allow != true {
				t.Fatalf("allowed by %q", b)
			}
		}
	})
}

// FuzzIntuneAnswer: only "code": "Success" allows; the reason is printable.
func FuzzIntuneAnswer(f *testing.F) {
	for _, s := range []string{`{"code": "Success"}`, `{"code": "ChallengeDecryptionError", "errorDescription": "bad"}`, `{"code": 1}`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var out map[string]any
		if json.Unmarshal(b, &out) != nil {
			return
		}
		ok, reason := intuneVerdict(out)
		if ok != (out["code"] == "Success") {
			t.Fatalf("verdict %v for %q", ok, b)
		}
		checkPrintable(t, "reason", reason, 300)
	})
}
