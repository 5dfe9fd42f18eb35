package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// TestCertificateSearch: a serial is found in every form operators paste
// it (hex with colons, spaces or 0x, either case, decimal, its beginning),
// combined with the other filters; expired is its own status (valid is
// not expired); the count covers every page; the expiry order pages by
// cursor. The same on the database and through the HTTP API's client.
func TestCertificateSearch(t *testing.T) {
	s := newService(t)
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	ctx := context.Background()
	if err := s.Store.CreateCA(ctx, store.CA{ID: "ca", CertDER: []byte{1}, KeyRef: "file:k", Created: now}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"laptops", "phones"} {
		if err := s.Store.CreateProfile(ctx, store.Profile{ID: p, CAID: "ca", RACertDER: []byte{2}, RAKeyRef: "file:ra",
			ChallengeMode: store.ChallengeStatic, ChallengeHash: "$argon2id$x", Created: now, Source: store.SourceConfig}); err != nil {
			t.Fatal(err)
		}
	}
	type seed struct {
		serial, profile, cn, san string
		notAfter                 time.Duration
	}
	seeds := []seed{
		{"4f2a9c01", "laptops", "alpha.example.com", "alpha.example.com", 48 * time.Hour},
		{"4f2a9c02", "phones", "beta.example.com", "beta.internal", -time.Hour}, // expired
		{"4f2b0000", "laptops", "gamma.example.com", "gamma.internal", 24 * time.Hour},
		{"1e240", "laptops", "delta", "delta.internal", 72 * time.Hour}, // 123456 in decimal
	}
	for i, c := range seeds {
		tx := fmt.Sprint("t", i)
		created := now.Add(-time.Duration(10-i) * time.Minute)
		if err := s.Store.RecordIssued(ctx, store.Issued{
			Certificate: store.Certificate{Serial: c.serial, ProfileID: c.profile, CAID: "ca", TransactionID: tx, Subject: "CN=" + c.cn,
				SANs: []string{"DNS:" + c.san}, DER: []byte{3}, NotBefore: now.Add(-100 * time.Hour), NotAfter: now.Add(c.notAfter),
				Status: store.CertValid, Created: created},
			Transaction: store.Transaction{ProfileID: c.profile, TransactionID: tx, Status: store.StatusIssued, PublicKeySHA256: []byte(tx),
				CSRDER: []byte{4}, CertSerial: c.serial, Created: created, Updated: created},
			Audit: store.AuditEvent{Time: created, Actor: "t", Action: "enroll", Object: c.serial, Outcome: "issued"},
		}); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := s.As(LocalAdmin).CreateToken(ctx, TokenRequest{Name: "search", Role: RoleAuditor})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&Handler{Service: s, Log: s.Log}).Routes())
	defer srv.Close()
	prefixes := func(t *testing.T, q string) []string {
		ps, err := SerialPrefixes(q)
		if err != nil {
			t.Fatalf("SerialPrefixes(%q): %v", q, err)
		}
		return ps
	}
	for name, api := range map[string]API{"local": s.As(LocalAdmin), "http": &Client{BaseURL: srv.URL, Token: tok.Token}} {
		t.Run(name, func(t *testing.T) {
			list := func(f store.CertificateFilter) []string {
				t.Helper()
				page, err := api.ListCertificates(ctx, f)
				if err != nil {
					t.Fatalf("list %+v: %v", f, err)
				}
				var out []string
				for _, c := range page.Certificates {
					out = append(out, c.Serial+"/"+c.Status)
				}
				return out
			}
			for _, tc := range []struct {
				q    string
				want []string
			}{
				{"4f2a9c01", []string{"4f2a9c01/valid"}},
				{"4F:2A:9C:01", []string{"4f2a9c01/valid"}},
				{"4f 2a 9c 01", []string{"4f2a9c01/valid"}},
				{"0x4F2A9C01", []string{"4f2a9c01/valid"}},
				{"00:4f:2a:9c:01", []string{"4f2a9c01/valid"}},
				{"4f2a", []string{"4f2a9c02/expired", "4f2a9c01/valid"}},
				{"123456", []string{"1e240/valid"}}, // decimal
				{"0x123456", nil},
			} {
				if got := list(store.CertificateFilter{SerialPrefixes: prefixes(t, tc.q)}); !slices.Equal(got, tc.want) {
					t.Errorf("serial %q: %v, want %v", tc.q, got, tc.want)
				}
			}
			if got := list(store.CertificateFilter{SerialPrefixes: prefixes(t, "4f2"), ProfileID: "laptops", SAN: "internal"}); !slices.Equal(got, []string{"4f2b0000/valid"}) {
				t.Errorf("serial 4f2 in laptops with SAN internal: %v", got)
			}
			if got := list(store.CertificateFilter{Subject: "EXAMPLE", Status: CertExpired}); !slices.Equal(got, []string{"4f2a9c02/expired"}) {
				t.Errorf("expired with subject example: %v", got)
			}
			if got := list(store.CertificateFilter{Status: store.CertValid, ProfileID: "phones"}); len(got) != 0 {
				t.Errorf("valid in phones (only an expired one): %v", got)
			}
			n, err := api.CountCertificates(ctx, store.CertificateFilter{Status: store.CertValid})
			if err != nil || n != 3 {
				t.Errorf("count valid = %d, %v; want 3", n, err)
			}
			n, err = api.CountCertificates(ctx, store.CertificateFilter{SerialPrefixes: prefixes(t, "4f")})
			if err != nil || n != 3 {
				t.Errorf("count serial 4f = %d, %v; want 3", n, err)
			}
			var got []string
			f := store.CertificateFilter{Order: store.CertOrderExpiry, Limit: 3}
			for pages := 1; ; pages++ {
				page, err := api.ListCertificates(ctx, f)
				if err != nil || pages > 2 {
					t.Fatalf("expiry page %d: %v", pages, err)
				}
				for _, c := range page.Certificates {
					got = append(got, c.Serial)
				}
				if page.Next.IsZero() {
					break
				}
				f.After = page.Next
			}
			if want := []string{"4f2a9c02", "4f2b0000", "4f2a9c01", "1e240"}; !slices.Equal(got, want) {
				t.Errorf("by expiry, pages of 3: %v, want %v", got, want)
			}
			_, err = api.ListCertificates(ctx, store.CertificateFilter{Status: "bogus"})
			var apiErr *APIError
			if !errors.Is(err, ErrInvalid) && !(errors.As(err, &apiErr) && apiErr.Status == http.StatusBadRequest) {
				t.Errorf("status bogus: %v, want a bad request", err)
			}
		})
	}
	for _, bad := range []string{"", "xyz", "0x", "4f:zz"} {
		if _, err := SerialPrefixes(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("SerialPrefixes(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}
