package provision

import (
	"context"
	"crypto/x509"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/sceptest"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlite"
	"github.com/scepd/scepd/internal/upstream"
)

// A profile in RA mode: its RA issuer is created once, the upstream's CA
// is pinned and stored, and a later apply needs no upstream; a wrong pin
// is refused with what was found.
func TestUpsertProfileUpstream(t *testing.T) {
	up := sceptest.StartScepserver(t)
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ks := keys.Source{Dir: dir}
	spec := config.Profile{ID: "legacy", Upstream: &config.Upstream{SCEP: &config.UpstreamSCEP{URL: up.URL}},
		Challenge: config.Challenge{Mode: store.ChallengeDynamic}}
	p, created, err := UpsertProfile(ctx, st, ks, spec, store.SourceConfig, FromFiles(), time.Now())
	if err != nil || !created {
		t.Fatalf("create: %v", err)
	}
	if p.CAID != "legacy-ra" {
		t.Fatalf("profile CA %q, want its RA issuer legacy-ra", p.CAID)
	}
	su, err := StoredUpstreamOf(p)
	if err != nil || su == nil || len(su.CAChainDER) != 1 {
		t.Fatalf("stored upstream %+v, %v", su, err)
	}
	if su.Fingerprint != upstream.Fingerprint(up.CACert.Raw) {
		t.Fatalf("pinned %s, want scepserver's CA (loopback: pinned on first discovery)", su.Fingerprint)
	}
	ra, _ := x509.ParseCertificate(p.RACertDER)
	issuer, _ := st.GetCA(ctx, "legacy-ra")
	issuerCert, _ := x509.ParseCertificate(issuer.CertDER)
	if ra == nil || issuerCert == nil || ra.CheckSignatureFrom(issuerCert) != nil {
		t.Fatal("the RA certificate is not issued by the profile's RA issuer")
	}

	// Applied again with the upstream down: kept as it was.
	up.Stop()
	again, _, err := UpsertProfile(ctx, st, ks, spec, store.SourceConfig, FromFiles(), time.Now())
	if err != nil {
		t.Fatalf("re-apply with the upstream down: %v", err)
	}
	if string(again.RACertDER) != string(p.RACertDER) || string(again.Upstream) != string(p.Upstream) {
		t.Fatal("re-applying changed the RA or the pinned upstream")
	}

	// A pin that does not match is refused, naming what was found.
	other := sceptest.StartScepserver(t)
	spec.Upstream.SCEP = &config.UpstreamSCEP{URL: other.URL, CAFingerprint: upstream.Fingerprint(up.CACert.Raw)}
	_, _, err = UpsertProfile(ctx, st, ks, spec, store.SourceConfig, FromFiles(), time.Now())
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "pinned fingerprint") || !strings.Contains(err.Error(), upstream.Fingerprint(other.CACert.Raw)) {
		t.Fatalf("a wrong pin: %v", err)
	}
}
