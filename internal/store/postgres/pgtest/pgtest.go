// Package pgtest gives tests a private PostgreSQL schema or database on
// the server SCEPD_TEST_POSTGRES names. Tests only.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
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
	u, schema := fresh(t, "CREATE SCHEMA %s", "DROP SCHEMA %s CASCADE")
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
	u, name := fresh(t, "CREATE DATABASE %s", "DROP DATABASE %s WITH (FORCE)")
	u.Path = "/" + name
	return u.String(), name
}

// fresh creates an object with a random name on SCEPD_TEST_POSTGRES's
// server (create and drop hold %s for the name), dropped when the test
// ends, and returns the server's URL and the name.
func fresh(t testing.TB, create, drop string) (*url.URL, string) {
	t.Helper()
	base := os.Getenv("SCEPD_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("SCEPD_TEST_POSTGRES is not set in CI")
		}
		t.Skip("SCEPD_TEST_POSTGRES is not set (e.g. postgres://127.0.0.1:5432/test?sslmode=disable)")
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "scepd_test_" + hex.EncodeToString(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connecting to SCEPD_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf(create, name)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			c.Exec(context.Background(), fmt.Sprintf(drop, name))
			c.Close(context.Background())
		}
	})
	return u, name
}
