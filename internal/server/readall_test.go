package server

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"
	"testing/iotest"
)

// TestReadAllAsIOReadAll: readAll returns what io.ReadAll returns, for a
// declared length that is right, short, long, absent or over the limit,
// and keeps http.MaxBytesReader's error.
func TestReadAllAsIOReadAll(t *testing.T) {
	body := bytes.Repeat([]byte("scep"), 700)
	for _, declared := range []int64{-1, 0, 1, 100, int64(len(body)) - 1, int64(len(body)), int64(len(body)) + 1, presizeLimit, presizeLimit + 1, 1 << 20} {
		for _, max := range []int64{int64(len(body)) - 5, int64(len(body)), 1 << 20} {
			reader := func() io.Reader {
				return iotest.HalfReader(http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(body)), max))
			}
			want, wantErr := io.ReadAll(reader())
			got, err := readAll(reader(), declared, max)
			if !bytes.Equal(got, want) {
				t.Errorf("declared %d, max %d: %d bytes, io.ReadAll %d", declared, max, len(got), len(want))
			}
			var mbe *http.MaxBytesError
			if (err == nil) != (wantErr == nil) || errors.As(err, &mbe) != errors.As(wantErr, &mbe) {
				t.Errorf("declared %d, max %d: error %v, io.ReadAll %v", declared, max, err, wantErr)
			}
		}
	}
}

// TestReadAllDeclaredIsNotAllocated: a body that declares a megabyte and
// sends a few bytes does not get a megabyte's buffer; one that declares
// presizeLimit gets presizeLimit+1 bytes at most (the declared length and
// the byte of the read that sees EOF), the bound presizeLimit sets.
func TestReadAllDeclaredIsNotAllocated(t *testing.T) {
	b, err := readAll(bytes.NewReader([]byte("short")), 1<<20, 1<<20)
	if err != nil || string(b) != "short" || cap(b) > presizeLimit {
		t.Fatalf("%q, %v, capacity %d", b, err, cap(b))
	}
	b, err = readAll(bytes.NewReader([]byte("short")), presizeLimit, 1<<20)
	if err != nil || string(b) != "short" || cap(b) > presizeLimit+1 {
		t.Fatalf("declared presizeLimit: %q, %v, capacity %d", b, err, cap(b))
	}
}
