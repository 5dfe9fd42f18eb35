package cms

import (
	"errors"
	"fmt"

	"github.com/scepd/scepd/internal/der"
)

// Limits on BER input. Devices are untrusted, so nesting and element counts
// are bounded before any allocation grows with them.
const (
	maxDepth    = 32
	maxElements = 1 << 16
)

// ErrBER reports input that is not valid BER.
var ErrBER = errors.New("cms: malformed BER")

// normalize rewrites BER (X.690 §8) into the definite-length form that
// encoding/asn1 and cryptobyte accept: indefinite lengths become definite,
// non-minimal lengths are shortened, and constructed OCTET STRINGs (chunked
// streaming encodings) are flattened into one primitive OCTET STRING.
//
// Everything else is copied byte for byte. In particular SET OF elements are
// never re-sorted, so a signature over signedAttrs can be checked against the
// bytes the client actually signed (RFC 5652 §5.4).
//
// Input that is already in that form (what nearly every client sends) is
// returned as it is, capped so appending to it cannot write into in.
func normalize(in []byte) ([]byte, error) {
	if rest, ok := (&normalizer{}).definite(in, 0); ok && len(rest) == 0 {
		return in[:len(in):len(in)], nil
	}
	n := &normalizer{}
	out, rest, err := n.element(in, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrBER, len(rest))
	}
	return out, nil
}

type normalizer struct {
	elements int
}

// element converts one TLV from the front of in and returns its definite
// encoding and the remaining bytes.
func (n *normalizer) element(in []byte, depth int) (out, rest []byte, err error) {
	if depth > maxDepth {
		return nil, nil, fmt.Errorf("%w: nesting deeper than %d", ErrBER, maxDepth)
	}
	n.elements++
	if n.elements > maxElements {
		return nil, nil, fmt.Errorf("%w: more than %d elements", ErrBER, maxElements)
	}
	tag, in, err := readTag(in)
	if err != nil {
		return nil, nil, err
	}
	constructed := tag[0]&0x20 != 0
	if len(in) == 0 {
		return nil, nil, fmt.Errorf("%w: missing length", ErrBER)
	}

	var children [][]byte
	if in[0] == 0x80 { // indefinite length, X.690 §8.1.3.6
		if !constructed {
			return nil, nil, fmt.Errorf("%w: indefinite length on a primitive element", ErrBER)
		}
		in = in[1:]
		for {
			if len(in) >= 2 && in[0] == 0 && in[1] == 0 {
				in = in[2:]
				break
			}
			if len(in) == 0 {
				return nil, nil, fmt.Errorf("%w: missing end-of-contents", ErrBER)
			}
			var child []byte
			child, in, err = n.element(in, depth+1)
			if err != nil {
				return nil, nil, err
			}
			children = append(children, child)
		}
		rest = in
	} else {
		length, in2, err := readLength(in)
		if err != nil {
			return nil, nil, err
		}
		if length > len(in2) {
			return nil, nil, fmt.Errorf("%w: length %d exceeds the %d bytes left", ErrBER, length, len(in2))
		}
		content := in2[:length]
		rest = in2[length:]
		if !constructed {
			return appendTLV(nil, tag, content), rest, nil
		}
		for len(content) > 0 {
			var child []byte
			child, content, err = n.element(content, depth+1)
			if err != nil {
				return nil, nil, err
			}
			children = append(children, child)
		}
	}

	// A constructed universal OCTET STRING is a chunked string: join the
	// chunks (each itself an OCTET STRING) into one primitive string.
	if len(tag) == 1 && tag[0] == 0x24 {
		var joined []byte
		for _, c := range children {
			t, body, err := splitTLV(c)
			if err != nil {
				return nil, nil, err
			}
			if t != 0x04 {
				return nil, nil, fmt.Errorf("%w: chunk of a constructed OCTET STRING has tag 0x%02x", ErrBER, t)
			}
			joined = append(joined, body...)
		}
		return appendTLV(nil, []byte{0x04}, joined), rest, nil
	}
	size := 0
	for _, c := range children {
		size += len(c)
	}
	body := make([]byte, 0, size)
	for _, c := range children {
		body = append(body, c...)
	}
	return appendTLV(nil, tag, body), rest, nil
}

// definite reports whether element would return the TLV at the front of
// in unchanged (definite, minimal lengths throughout; no constructed
// OCTET STRING; within the limits), and the bytes after it. It allocates
// nothing: it only walks the encoding.
func (n *normalizer) definite(in []byte, depth int) (rest []byte, ok bool) {
	if depth > maxDepth {
		return nil, false
	}
	n.elements++
	if n.elements > maxElements {
		return nil, false
	}
	tag, in, err := readTag(in)
	if err != nil || len(in) == 0 || (len(tag) == 1 && tag[0] == 0x24) {
		return nil, false
	}
	length, in2, err := readLength(in)
	if err != nil || length > len(in2) || len(in)-len(in2) != der.LengthLen(length) {
		return nil, false
	}
	content, rest := in2[:length], in2[length:]
	if tag[0]&0x20 != 0 {
		for len(content) > 0 {
			if content, ok = n.definite(content, depth+1); !ok {
				return nil, false
			}
		}
	}
	return rest, true
}

// readTag returns the identifier octets, including high-tag-number forms.
func readTag(in []byte) (tag, rest []byte, err error) {
	if len(in) == 0 {
		return nil, nil, fmt.Errorf("%w: missing tag", ErrBER)
	}
	i := 1
	if in[0]&0x1f == 0x1f {
		for {
			if i >= len(in) || i > 5 {
				return nil, nil, fmt.Errorf("%w: bad high tag number", ErrBER)
			}
			b := in[i]
			i++
			if b&0x80 == 0 {
				break
			}
		}
	}
	return in[:i], in[i:], nil
}

// readLength reads a definite length in short or (possibly non-minimal) long form.
func readLength(in []byte) (int, []byte, error) {
	b := in[0]
	in = in[1:]
	if b < 0x80 {
		return int(b), in, nil
	}
	n := int(b & 0x7f)
	if n == 0 || n > 4 || n > len(in) {
		return 0, nil, fmt.Errorf("%w: bad length encoding", ErrBER)
	}
	length := 0
	for _, c := range in[:n] {
		length = length<<8 | int(c)
	}
	if length < 0 || length > 1<<30 {
		return 0, nil, fmt.Errorf("%w: length too large", ErrBER)
	}
	return length, in[n:], nil
}

// splitTLV splits a normalized single-byte-tag element into tag and content.
func splitTLV(b []byte) (byte, []byte, error) {
	tag, rest, err := readTag(b)
	if err != nil {
		return 0, nil, err
	}
	length, rest, err := readLength(rest)
	if err != nil {
		return 0, nil, err
	}
	if len(tag) != 1 || length != len(rest) {
		return 0, nil, fmt.Errorf("%w: bad element", ErrBER)
	}
	return tag[0], rest, nil
}

// appendTLV appends tag, minimal DER length and content.
func appendTLV(dst, tag, content []byte) []byte {
	dst = append(dst, tag...)
	dst = der.AppendLength(dst, len(content))
	return append(dst, content...)
}
