package storetest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/scepd/scepd/internal/store"
)

func sealedKey(id string, b byte) store.SealedKey {
	return store.SealedKey{ID: id, KDF: "pbkdf2-hmac-sha256", Iterations: 600000, Salt: []byte{b, 1, 2},
		Cipher: "aes-256-gcm", Sealed: []byte{b, 9, 8, 7}, Created: when}
}

func testSealedKeys(t *testing.T, s store.Store) {
	a, b := sealedKey("ca/a", 1), sealedKey("audit", 2)
	for _, k := range []store.SealedKey{a, b} {
		if err := s.PutKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutKey(ctx, sealedKey("ca/a", 3)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("PutKey of an existing ID: %v, want ErrConflict", err)
	}
	got, err := s.GetKey(ctx, "ca/a")
	if err != nil || got.KDF != a.KDF || got.Iterations != a.Iterations || !bytes.Equal(got.Salt, a.Salt) ||
		got.Cipher != a.Cipher || !bytes.Equal(got.Sealed, a.Sealed) {
		t.Fatalf("GetKey = %+v, %v; want %+v (the first one stays)", got, err, a)
	}
	sameInstant(t, "key created", got.Created, when)
	if _, err := s.GetKey(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetKey(missing) = %v, want ErrNotFound", err)
	}
	list, err := s.ListKeys(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "audit" || list[1].ID != "ca/a" {
		t.Fatalf("ListKeys = %+v, %v", list, err)
	}
	if err := s.DeleteKey(ctx, "audit"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteKey(ctx, "audit"); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
	if _, err := s.GetKey(ctx, "audit"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetKey after DeleteKey = %v, want ErrNotFound", err)
	}
}

// testMoveKeys: sealed keys, references and deletions change together, or
// not at all.
func testMoveKeys(t *testing.T, s store.Store) {
	seed(t, s) // ca1 with file:k; p1 with RA file:ra
	p, err := s.GetProfile(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	p.NextRAKeyRef = "file:next"
	if err := s.UpdateProfile(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := s.PutKey(ctx, sealedKey("old", 4)); err != nil {
		t.Fatal(err)
	}
	refs := map[string]string{"file:k": "db:k", "file:ra": "db:ra", "file:next": "db:next"}
	// A conflicting ID rolls everything back.
	bad := store.KeyMove{Put: []store.SealedKey{sealedKey("k", 1), sealedKey("old", 5)}, Refs: refs, Delete: []string{"old"}}
	if err := s.MoveKeys(ctx, bad); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("MoveKeys with an existing ID = %v, want ErrConflict", err)
	}
	if c, _ := s.GetCA(ctx, "ca1"); c.KeyRef != "file:k" {
		t.Fatalf("after a failed move the CA key is %q", c.KeyRef)
	}
	if _, err := s.GetKey(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after a failed move key k: %v, want ErrNotFound", err)
	}
	if _, err := s.GetKey(ctx, "old"); err != nil {
		t.Fatalf("after a failed move key old: %v", err)
	}
	good := store.KeyMove{Put: []store.SealedKey{sealedKey("k", 1), sealedKey("ra", 2), sealedKey("next", 3)}, Refs: refs, Delete: []string{"old"}}
	if err := s.MoveKeys(ctx, good); err != nil {
		t.Fatal(err)
	}
	c, err := s.GetCA(ctx, "ca1")
	if err != nil || c.KeyRef != "db:k" {
		t.Fatalf("CA key ref = %q, %v; want db:k", c.KeyRef, err)
	}
	p, err = s.GetProfile(ctx, "p1")
	if err != nil || p.RAKeyRef != "db:ra" || p.NextRAKeyRef != "db:next" {
		t.Fatalf("profile key refs = %q, %q, %v", p.RAKeyRef, p.NextRAKeyRef, err)
	}
	list, err := s.ListKeys(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("ListKeys after the move = %+v, %v; want k, next, ra", list, err)
	}
	if _, err := s.GetKey(ctx, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("key old after the move: %v, want deleted", err)
	}
}
