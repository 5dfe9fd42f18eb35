package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/store"
)

// TestReadyWhileLocked: another process holding the write lock (here a
// connection of its own in BEGIN EXCLUSIVE: a backup, the sqlite3 shell
// in a transaction) makes every write wait, then fail; the store is not
// ready meanwhile, says so within the probe's timeout, and is ready again
// once the lock is let go. The probe gives its connection its busy
// timeout back.
func TestReadyWhileLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scepd.db")
	s := openAt(t, path)
	s.DB().SetMaxOpenConns(1) // the probe's connection is the one asked after
	ctx := context.Background()
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("ready before: %v", err)
	}

	other, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping while locked: %v (readers are not blocked in WAL mode)", err)
	}
	start := time.Now()
	err = s.Ready(ctx)
	took := time.Since(start)
	var nr *store.NotReadyError
	if !errors.As(err, &nr) || !strings.Contains(nr.Reason, "locked") {
		t.Fatalf("ready while another connection holds the write lock: %v, want a NotReadyError saying it is locked", err)
	}
	if strings.Contains(nr.Reason, path) {
		t.Errorf("the reason, which anyone may read, names the file: %q", nr.Reason)
	}
	if took > 2*time.Second {
		t.Errorf("the probe took %v, more than /readyz waits (2s)", took)
	}
	var busy int
	if err := s.DB().QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil || busy != busyTimeout {
		t.Errorf("busy_timeout after the probe: %d (%v), want %d", busy, err, busyTimeout)
	}

	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("ready once the lock is let go: %v", err)
	}
}
