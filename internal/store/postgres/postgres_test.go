package postgres

import (
	"context"
	"testing"

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
