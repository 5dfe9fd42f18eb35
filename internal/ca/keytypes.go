package ca

import "strings"

// The key types are one table: KeyTypes lists them, KeyType.Algorithm says
// what each is made of; what follows derives from those two.

// Valid reports whether t is one of KeyTypes.
func (t KeyType) Valid() bool {
	_, err := t.Algorithm()
	return err == nil
}

// RSA reports whether t is an RSA key type: the only kind an RA (or a CA
// answering SCEP itself) may have, since clients encrypt requests to it.
func (t KeyType) RSA() bool {
	alg, err := t.Algorithm()
	return err == nil && alg.RSABits > 0
}

// RAKeyTypes lists the key types an RA may have.
func RAKeyTypes() []KeyType {
	var out []KeyType
	for _, t := range KeyTypes() {
		if t.RSA() {
			out = append(out, t)
		}
	}
	return out
}

// KeyTypeList spells key types for messages and help: "a, b or c".
func KeyTypeList(ts []KeyType) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = string(t)
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
