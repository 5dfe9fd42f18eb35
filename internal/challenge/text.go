package challenge

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable makes text from a remote party (a webhook's reason, an MDM's
// device identity) safe to log, store and hand to a device: invalid UTF-8
// and control characters become '?', and it is cut to max runes.
func Printable(s string, max int) string {
	var b strings.Builder
	n := 0
	for i, r := range s {
		if n == max {
			break
		}
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 { // an invalid byte, not a real U+FFFD
				r = '?'
			}
		}
		if unicode.IsControl(r) {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
