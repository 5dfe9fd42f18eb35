package keys

import "testing"

func TestTokenRef(t *testing.T) {
	ref := tokenRef("ca/default-1a2b")
	if ref != "pkcs11:object=ca%2Fdefault-1a2b" {
		t.Fatalf("ref %q", ref)
	}
	for in, want := range map[string]string{ref: "ca/default-1a2b", "pkcs11:token=x;object=k1": "k1", "pkcs11:token=x": "", "file:ca.key": ""} {
		if got, _ := parseTokenRef(in); got != want {
			t.Errorf("parseTokenRef(%q) = %q, want %q", in, got, want)
		}
	}
}
