// Package der writes the length octets of a DER element (X.690 §8.1.3,
// §10.1: the definite form, in as few octets as the length needs). It is
// the length writer of the encoders that write DER in one pass into a
// buffer summed to its exact size (internal/ca, internal/scep/cms).
//
// Every length a Go slice can have is encoded, so none is truncated:
// lengths below 2^32 take the octets cryptobyte and encoding/asn1 write;
// longer ones take five to eight octets after 0x85-0x88, as X.690 allows
// (up to 126) and as encoding/asn1 writes them, where cryptobyte refuses
// them. A negative length is no length (the lengths passed are len()s
// and sums of them): AppendLength and LengthLen panic on one rather than
// write something else.
package der

// AppendLength appends to dst the length octets of an element of l
// content octets, and returns the extended slice.
func AppendLength(dst []byte, l int) []byte {
	switch {
	case l < 0:
		panic("der: negative length")
	case l < 0x80:
		return append(dst, byte(l))
	case l < 0x100:
		return append(dst, 0x81, byte(l))
	case l < 0x10000:
		return append(dst, 0x82, byte(l>>8), byte(l))
	case l < 0x1000000:
		return append(dst, 0x83, byte(l>>16), byte(l>>8), byte(l))
	}
	n := LengthLen(l) - 1
	dst = append(dst, 0x80|byte(n))
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(uint64(l)>>(8*i)))
	}
	return dst
}

// LengthLen is the number of octets AppendLength appends for l.
func LengthLen(l int) int {
	if l < 0 {
		panic("der: negative length")
	}
	if l < 0x80 {
		return 1
	}
	n := 1
	for u := uint64(l); u > 0; u >>= 8 {
		n++
	}
	return n
}

// AppendHeader appends to dst an element's tag (one octet: the tags of
// the encoders here are all low-number) and the length octets of its l
// content octets.
func AppendHeader(dst []byte, tag byte, l int) []byte {
	return AppendLength(append(dst, tag), l)
}

// ElementLen is the size of a whole element with l content octets: its
// tag, its length octets and the content.
func ElementLen(l int) int { return 1 + LengthLen(l) + l }
