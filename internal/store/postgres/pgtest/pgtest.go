// Package pgtest gives tests a private PostgreSQL schema, database or
// server. Tests only.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Schema returns a URL for a fresh schema in the database named by
// SCEPD_TEST_POSTGRES, dropped when the test ends. Without the variable the
// test is skipped, except in CI, where it fails: CI must run this backend.
func Schema(t testing.TB) string {
	t.Helper()
	base := os.Getenv("SCEPD_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("SCEPD_TEST_POSTGRES is not set in CI")
		}
		t.Skip("SCEPD_TEST_POSTGRES is not set (e.g. postgres://127.0.0.1:5432/test?sslmode=disable)")
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "scepd_test_" + hex.EncodeToString(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connecting to SCEPD_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Database returns a URL for a fresh database on the server named by
// SCEPD_TEST_POSTGRES, dropped (its sessions cut) when the test ends: for
// a test that changes database-wide settings (ALTER DATABASE), which a
// schema would share with every other test. Skipped like Schema.
func Database(t testing.TB) (dbURL, name string) {
	t.Helper()
	base := os.Getenv("SCEPD_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("SCEPD_TEST_POSTGRES is not set in CI")
		}
		t.Skip("SCEPD_TEST_POSTGRES is not set (e.g. postgres://127.0.0.1:5432/test?sslmode=disable)")
	}
	b := make([]byte, 6)
	rand.Read(b)
	name = "scepd_test_" + hex.EncodeToString(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connecting to SCEPD_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			c.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String(), name
}
