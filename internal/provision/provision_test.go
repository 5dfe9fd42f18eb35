package provision

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/challenge"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/store/sqlite"
)

func TestEnsureDefault(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ks := keys.Source{Dir: dir}
	o := Options{CAKeyType: ca.RSA2048, RAKeyType: ca.RSA2048, Now: time.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}

	first, err := EnsureDefault(ctx, st, ks, o)
	if err != nil {
		t.Fatal(err)
	}
	if !first.CreatedCA || len(first.GeneratedChallenge) < 32 {
		t.Fatalf("first start: %+v", first)
	}
	p1, _ := st.GetProfile(ctx, DefaultID)
	second, err := EnsureDefault(ctx, st, ks, o)
	if err != nil || second.CreatedCA || second.GeneratedChallenge != "" {
		t.Fatalf("second start: %+v %v", second, err)
	}
	p2, _ := st.GetProfile(ctx, DefaultID)
	if p1.ChallengeHash != p2.ChallengeHash || string(p1.RACertDER) != string(p2.RACertDER) {
		t.Fatal("a second start changed the profile")
	}
	v, _ := challenge.NewStatic(p2.ChallengeHash)
	if _, err := v.Validate(ctx, challenge.Request{Password: first.GeneratedChallenge}); err != nil {
		t.Fatal("the printed challenge does not validate")
	}

	// SCEPD_CHALLENGE on a later start replaces the stored challenge.
	o.Challenge = "operator-chosen"
	if _, err := EnsureDefault(ctx, st, ks, o); err != nil {
		t.Fatal(err)
	}
	p3, _ := st.GetProfile(ctx, DefaultID)
	v, _ = challenge.NewStatic(p3.ChallengeHash)
	_, errNew := v.Validate(ctx, challenge.Request{Password: "operator-chosen"})
	_, errOld := v.Validate(ctx, challenge.Request{Password: first.GeneratedChallenge})
	if errNew != nil || errOld == nil {
		t.Fatal("SCEPD_CHALLENGE did not replace the challenge")
	}
	// The same value again changes nothing.
	if _, err := EnsureDefault(ctx, st, ks, o); err != nil {
		t.Fatal(err)
	}
	if p4, _ := st.GetProfile(ctx, DefaultID); p4.ChallengeHash != p3.ChallengeHash {
		t.Fatal("an unchanged SCEPD_CHALLENGE was re-hashed")
	}
}
