package metrics

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/scepd/scepd/internal/store"
	"github.com/scepd/scepd/internal/store/sqlite"
)

func TestInstrumentedStore(t *testing.T) {
	ctx := context.Background()
	raw, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	m := New(Build{Version: "test"}, raw, func() float64 { return 0 })
	raw.SetObserver(m)
	st := raw
	if _, err := st.GetCA(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetCA: %v", err)
	}
	if err := st.CreateToken(ctx, store.Token{ID: "t", Hash: []byte{1}, Role: "admin", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	// On a closed database a call is a real error.
	if _, err := st.ListCAs(ctx); err == nil {
		t.Fatal("ListCAs on a closed store succeeded")
	}
	if n := testutil.CollectAndCount(m.storeSeconds); n != 3 {
		t.Errorf("%d timed operations, want 3 (GetCA, CreateToken, ListCAs)", n)
	}
	if got := testutil.ToFloat64(m.storeErrors.WithLabelValues("ListCAs")); got != 1 {
		t.Errorf("ListCAs errors = %v, want 1", got)
	}
	if err := testutil.CollectAndCompare(m.storeErrors, strings.NewReader(`
# HELP scepd_store_errors_total Database operations that failed (not counting not-found, conflict, spent-challenge and limit answers), by operation.
# TYPE scepd_store_errors_total counter
scepd_store_errors_total{op="ListCAs"} 1
`)); err != nil {
		t.Error(err) // GetCA's not-found is an answer, not an error
	}
}
