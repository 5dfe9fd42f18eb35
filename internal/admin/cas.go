package admin

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/config"
	"github.com/scepd/scepd/internal/provision"
	"github.com/scepd/scepd/internal/store"
)

// CAView describes a CA.
type CAView struct {
	ID        string    `json:"id"`
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	Serial    string    `json:"serial"`
	KeyType   string    `json:"key_type"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Root      bool      `json:"root"`
	ChainLen  int       `json:"chain_length"`
	SHA256    string    `json:"sha256"`
	CAMode    bool      `json:"ca_mode_capable"`
}

func fingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}

func caView(row store.CA) (CAView, error) {
	c, err := x509.ParseCertificate(row.CertDER)
	if err != nil {
		return CAView{}, fmt.Errorf("admin: CA %q certificate: %w", row.ID, err)
	}
	return CAView{
		ID: row.ID, Subject: c.Subject.String(), Issuer: c.Issuer.String(), Serial: c.SerialNumber.Text(16),
		KeyType: ca.PublicKeyAlgorithm(c.PublicKey), NotBefore: c.NotBefore, NotAfter: c.NotAfter,
		Root: len(row.ChainDER) == 0 && c.CheckSignatureFrom(c) == nil, ChainLen: 1 + len(row.ChainDER), SHA256: fingerprint(row.CertDER),
		CAMode: ca.CAModeCapable(c),
	}, nil
}

func (b *bound) ListCAs(ctx context.Context) ([]CAView, error) {
	if err := b.checkGlobal(ctx, ActRead); err != nil {
		return nil, err
	}
	rows, err := b.s.Store.ListCAs(ctx)
	if err != nil {
		return nil, err
	}
	out := []CAView{}
	for _, r := range rows {
		v, err := caView(r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (b *bound) GetCA(ctx context.Context, id string) (CAView, error) {
	if err := b.checkGlobal(ctx, ActRead); err != nil {
		return CAView{}, err
	}
	row, err := b.s.Store.GetCA(ctx, id)
	if err != nil {
		return CAView{}, err
	}
	return caView(row)
}

func (b *bound) CAChain(ctx context.Context, id string) ([][]byte, error) {
	if err := b.checkGlobal(ctx, ActRead); err != nil {
		return nil, err
	}
	row, err := b.s.Store.GetCA(ctx, id)
	if err != nil {
		return nil, err
	}
	return append([][]byte{row.CertDER}, row.ChainDER...), nil
}

func (b *bound) CreateCA(ctx context.Context, spec config.CA) (CAView, error) {
	if err := b.checkGlobal(ctx, ActManage); err != nil {
		return CAView{}, err
	}
	row, err := provision.CreateCA(ctx, b.s.Store, b.s.Keys, spec, provision.Inline(), b.s.Now())
	if err != nil {
		b.audit(ctx, "ca.create", "ca:"+spec.ID, "failed", map[string]string{"error": err.Error()})
		return CAView{}, err
	}
	how := "created"
	if spec.Import != nil {
		how = "imported"
	}
	b.audit(ctx, "ca.create", "ca:"+row.ID, "ok", map[string]string{"how": how})
	b.reload(ctx)
	return caView(row)
}
