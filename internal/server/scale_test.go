package server_test

import (
	"context"
	"crypto/x509"
	"database/sql"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the driver the store uses, for bulk filling

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/provision"
	"github.com/scepd/scepd/internal/revocation"
	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/postgres"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
	"github.com/scepd/scepd/internal/store/sqlite"
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

// backend is a fresh store of one kind and a way to bulk-fill it with SQL.
type backend struct {
	st   store.Store
	dir  string
	fill func(b *testing.B, n int, revoked bool)
}

func openBackend(b *testing.B, kind string) backend {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	switch kind {
	case "sqlite":
		path := filepath.Join(dir, "scepd.db")
		st, err := sqlite.Open(ctx, path)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return backend{st: st, dir: dir, fill: func(b *testing.B, n int, revoked bool) {
			db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			fillSQL(b, db, sqliteFill, n, revoked)
		}}
	case "postgres":
		url := pgtest.Schema(b)
		st, err := postgres.Open(ctx, url, postgres.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return backend{st: st, dir: dir, fill: func(b *testing.B, n int, revoked bool) {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close(ctx)
			status, at := "valid", "NULL"
			if revoked {
				status, at = "revoked", "now() - interval '1 day'"
			}
			for _, q := range []string{
				`INSERT INTO certificates (serial, profile_id, transaction_id, subject, sans, not_before, not_after, der, status, ca_id, renewed_serial, revoked_at, revocation_reason, created_at)
				 SELECT lpad(to_hex(i), 32, '0'), 'default', 'hist-' || i, 'CN=hist-' || i || ',O=Fleet', ARRAY['DNS:hist-' || i || '.example'],
				        now() - interval '30 days', now() + interval '335 days', decode(repeat('30', 600), 'hex'), '` + status + `', 'default', '', ` + at + `, 1,
				        now() - (i % 365) * interval '1 day'
				 FROM generate_series(1, $1) AS i`,
				`INSERT INTO transactions (profile_id, transaction_id, status, public_key_sha256, csr_der, cert_serial, created_at, updated_at, sender_nonce)
				 SELECT 'default', 'hist-' || i, 'issued', sha256(int8send(i)), decode(repeat('30', 400), 'hex'), lpad(to_hex(i), 32, '0'), now(), now(), int8send(i)
				 FROM generate_series(1, $1) AS i`,
				`ANALYZE`,
			} {
				if _, err := conn.Exec(ctx, q, n); err != nil && q != "ANALYZE" {
					b.Fatal(err)
				}
			}
		}}
	}
	b.Fatalf("unknown backend %q", kind)
	return backend{}
}

// sqliteFill inserts n certificates and their transactions with one
// statement each (a recursive CTE counts), the way a year of enrollments
// would leave them: 600-byte certificates, 400-byte CSRs, spread over a
// year of creation dates.
var sqliteFill = []string{
	`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?1)
	 INSERT INTO certificates (serial, profile_id, transaction_id, subject, sans, not_before, not_after, der, status, ca_id, renewed_serial, revoked_at, revocation_reason, created_at)
	 SELECT printf('%032x', i), 'default', 'hist-' || i, 'CN=hist-' || i || ',O=Fleet', '["DNS:hist-' || i || '.example"]',
	        strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-30 days'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+335 days'), zeroblob(600), ?2, 'default', '',
	        ?3, 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || (i % 365) || ' days')
	 FROM s`,
	`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?1)
	 INSERT INTO transactions (profile_id, transaction_id, status, public_key_sha256, csr_der, cert_serial, created_at, updated_at, sender_nonce)
	 SELECT 'default', 'hist-' || i, 'issued', randomblob(32), zeroblob(400), printf('%032x', i),
	        strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), randomblob(16)
	 FROM s`,
	`ANALYZE`,
}

func fillSQL(b *testing.B, db *sql.DB, stmts []string, n int, revoked bool) {
	b.Helper()
	status, at := "valid", any(nil)
	if revoked {
		status, at = "revoked", time.Now().Add(-24*time.Hour).UTC().Format("2006-01-02T15:04:05.000000Z")
	}
	for _, q := range stmts {
		args := []any{n, status, at}
		if q == "ANALYZE" {
			args = nil
		}
		if _, err := db.Exec(q, args...); err != nil {
			b.Fatalf("filling: %v", err)
		}
	}
}

func backends() []string {
	if os.Getenv("SCEPD_TEST_POSTGRES") != "" {
		return []string{"sqlite", "postgres"}
	}
	return []string{"sqlite"}
}

// BenchmarkHistory: SCEPD_BENCH_ENROLLMENTS (default 300) enrollments
// with SCEPD_BENCH_HISTORY (default 1,000,000) certificates already
// stored, against an empty store, on each backend, measured in the same
// run. Reports both CPU and wall time per enrollment and the ratios
// full/empty. The count is its own, not b.N, and each backend is measured
// once: the framework calls a benchmark again with growing b.N, which would
// fill the million rows again each time.
//
//	go test -run '^$' -bench History -timeout 1h ./internal/server
func BenchmarkHistory(b *testing.B) {
	n := envInt("SCEPD_BENCH_HISTORY", 1_000_000)
	enrollments := envInt("SCEPD_BENCH_ENROLLMENTS", 300)
	type result struct{ emptyCPU, emptyWall, fullCPU, fullWall time.Duration }
	measured := map[string]result{}
	for _, kind := range backends() {
		b.Run(kind, func(b *testing.B) {
			measure := func(history int) (cpu, wall time.Duration) {
				be := openBackend(b, kind)
				hs := newServerOn(b, be.st, keys.Source{Dir: be.dir}, ca.ECDSAP256)
				if history > 0 {
					start := time.Now()
					be.fill(b, history, false)
					b.Logf("%s: %d certificates and transactions stored in %v", kind, history, time.Since(start).Round(time.Millisecond))
				}
				cpu, wall, _ = enrollCPU(b, hs, kind, enrollments)
				return cpu, wall
			}
			r, ok := measured[kind]
			if !ok {
				r.emptyCPU, r.emptyWall = measure(0)
				r.fullCPU, r.fullWall = measure(n)
				measured[kind] = r
			}
			emptyCPU, emptyWall, fullCPU, fullWall := r.emptyCPU, r.emptyWall, r.fullCPU, r.fullWall
			b.ReportMetric(float64(emptyCPU.Microseconds())/1000, "empty-cpu-ms/op")
			b.ReportMetric(float64(fullCPU.Microseconds())/1000, "full-cpu-ms/op")
			b.ReportMetric(float64(emptyWall.Microseconds())/1000, "empty-wall-ms/op")
			b.ReportMetric(float64(fullWall.Microseconds())/1000, "full-wall-ms/op")
			b.ReportMetric(float64(fullCPU)/float64(emptyCPU), "x-cpu")
			b.ReportMetric(float64(fullWall)/float64(emptyWall), "x-wall")
		})
	}
}

// BenchmarkCRL: signing a CRL of SCEPD_BENCH_REVOKED (default 100,000)
// revoked certificates, from the store to the stored DER: seconds, heap
// allocated per CRL and the CRL's size.
//
//	go test -run '^$' -bench CRL -benchtime 3x ./internal/server
func BenchmarkCRL(b *testing.B) {
	n := envInt("SCEPD_BENCH_REVOKED", 100_000)
	for _, kind := range backends() {
		for _, kt := range []ca.KeyType{ca.ECDSAP256, ca.RSA2048} {
			b.Run(kind+"/"+string(kt), func(b *testing.B) {
				be := openBackend(b, kind)
				hs := newServerOn(b, be.st, keys.Source{Dir: be.dir}, kt)
				hs.Close()
				be.fill(b, n, true)
				row, err := be.st.GetCA(context.Background(), "default")
				if err != nil {
					b.Fatal(err)
				}
				issuer, err := provision.LoadCA(row, keys.Source{Dir: be.dir})
				if err != nil {
					b.Fatal(err)
				}
				rev := &revocation.Service{Store: be.st, CAs: func() map[string]*ca.CA { return map[string]*ca.CA{"default": issuer} },
					Now: time.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				b.ResetTimer()
				var der []byte
				for range b.N {
					c, err := rev.Refresh(context.Background(), "default")
					if err != nil {
						b.Fatal(err)
					}
					der = c.DER
				}
				b.StopTimer()
				runtime.ReadMemStats(&after)
				crl, err := x509.ParseRevocationList(der)
				if err != nil || len(crl.RevokedCertificateEntries) != n || crl.CheckSignatureFrom(issuer.Cert) != nil {
					b.Fatalf("the CRL does not hold %d entries signed by the CA: %v", n, err)
				}
				b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "alloc-MiB/op")
				b.ReportMetric(float64(len(der))/(1<<20), "crl-MiB")
			})
		}
	}
}
