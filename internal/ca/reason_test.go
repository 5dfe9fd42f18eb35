package ca

import (
	"slices"
	"testing"
)

// TestReasonNames: the one table of RFC 5280 §5.3.1 CRLReason names
// reads both ways; removeFromCRL (delta CRLs only) is not offered.
func TestReasonNames(t *testing.T) {
	for _, tt := range []struct {
		code int
		name string
	}{{0, "unspecified"}, {1, "keyCompromise"}, {2, "cACompromise"}, {3, "affiliationChanged"}, {4, "superseded"},
		{5, "cessationOfOperation"}, {6, "certificateHold"}, {9, "privilegeWithdrawn"}, {10, "aACompromise"}} {
		if got := ReasonName(tt.code); got != tt.name {
			t.Errorf("ReasonName(%d) = %q, want %q", tt.code, got, tt.name)
		}
		if code, ok := ReasonCode(tt.name); !ok || code != tt.code {
			t.Errorf("ReasonCode(%q) = %d, %v; want %d", tt.name, code, ok, tt.code)
		}
		if !slices.Contains(ReasonNames(), tt.name) {
			t.Errorf("ReasonNames() lacks %q", tt.name)
		}
	}
	if ReasonName(8) != "removeFromCRL" || ReasonName(7) != "7" || ReasonName(-1) != "-1" || ReasonName(11) != "11" {
		t.Errorf("ReasonName of 8, 7, -1, 11: %q %q %q %q", ReasonName(8), ReasonName(7), ReasonName(-1), ReasonName(11))
	}
	for _, name := range []string{"removeFromCRL", "1", "KeyCompromise", ""} {
		if _, ok := ReasonCode(name); ok {
			t.Errorf("ReasonCode(%q) accepted", name)
		}
	}
	if slices.Contains(ReasonNames(), "removeFromCRL") || len(ReasonNames()) != 9 {
		t.Errorf("ReasonNames() = %v", ReasonNames())
	}
}
