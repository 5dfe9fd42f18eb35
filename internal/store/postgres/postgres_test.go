package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/postgres/pgtest"
	"github.com/scepd/scepd/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), pgtest.Schema(t), Options{MaxConns: 8})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestConcurrentMigration(t *testing.T) {
	u := pgtest.Schema(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := Open(context.Background(), u, Options{})
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("replicas migrating together: %v", err)
		}
	}
}

func TestRenewalClientIDMigration(t *testing.T) {
	storetest.RunRenewalClientIDMigration(t, func(t *testing.T) (store.Store, storetest.Exec, storetest.Reopen) {
		u := pgtest.Schema(t)
		open := func(t *testing.T) store.Store {
			s, err := Open(context.Background(), u, Options{MaxConns: 4})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		s := open(t)
		conn, err := pgx.Connect(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return s, func(t *testing.T, q string, args ...any) {
			t.Helper()
			if _, err := conn.Exec(context.Background(), q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}, open
	})
}

func TestAuditTamper(t *testing.T) {
	storetest.RunAuditTamper(t, func(t *testing.T) (storetest.Keyed, storetest.Exec) {
		u := pgtest.Schema(t)
		s, err := Open(context.Background(), u, Options{MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.Connect(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return s, func(t *testing.T, q string, args ...any) {
			t.Helper()
			// The suite writes ? placeholders; PostgreSQL numbers them.
			var b strings.Builder
			n := 0
			for _, r := range q {
				if r == '?' {
					n++
					fmt.Fprintf(&b, "$%d", n)
					continue
				}
				b.WriteRune(r)
			}
			if _, err := conn.Exec(context.Background(), b.String(), args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	})
}
