package challenge

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestStatic(t *testing.T) {
	if _, err := HashPassword("short"); err == nil {
		t.Fatal("a 5-character static challenge was accepted")
	}
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, "correct horse") || !strings.HasPrefix(h, "$argon2id$v=19$") {
		t.Fatalf("hash %q", h)
	}
	v, err := NewStatic(h)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, tt := range []struct {
		pw   string
		want error
	}{
		{"wrong horse", ErrInvalid},
		{"correct horse", nil},
		{"correct horse", nil}, // from the verified cache
		{"", ErrInvalid},
		{"correct hors", ErrInvalid},
		{"correct horse ", ErrInvalid},
	} {
		if _, err := v.Validate(ctx, Request{Password: tt.pw}); !errors.Is(err, tt.want) {
			t.Errorf("%d: Validate(%q) = %v, want %v", i, tt.pw, err, tt.want)
		}
	}
	for _, bad := range []string{"", "$argon2id$", "$bcrypt$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=19$m=0,t=1,p=1$AA$AA"} {
		if _, err := NewStatic(bad); err == nil {
			t.Errorf("NewStatic(%q) accepted a malformed hash", bad)
		}
	}
}

func BenchmarkStaticCached(b *testing.B) {
	h, _ := HashPassword("correct horse")
	v, _ := NewStatic(h)
	ctx := context.Background()
	_, _ = v.Validate(ctx, Request{Password: "correct horse"})
	for b.Loop() {
		if _, err := v.Validate(ctx, Request{Password: "correct horse"}); err != nil {
			b.Fatal(err)
		}
	}
}
