package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scepd/scepd/internal/store"
)

// ObserveStore records one store call (store.Observer): its time in
// scepd_store_seconds{op} and, when it failed unexpectedly, a count in
// scepd_store_errors_total{op}. Domain outcomes (not found, conflict,
// challenge spent, limit, superseded) are answers, not errors, and are
// not counted.
func (m *Metrics) ObserveStore(op string, took time.Duration, err error) {
	m.storeSeconds.WithLabelValues(op).Observe(took.Seconds())
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) &&
		!errors.Is(err, store.ErrChallengeSpent) && !errors.Is(err, store.ErrLimit) && !errors.Is(err, store.ErrSuperseded) &&
		!errors.Is(err, context.Canceled) {
		m.storeErrors.WithLabelValues(op).Inc()
	}
}

var _ store.Observer = (*Metrics)(nil)

func newStoreCollectors() (*prometheus.HistogramVec, *prometheus.CounterVec) {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scepd_store_seconds",
			Help:    "Time of each database operation, by operation.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 5},
		}, []string{"op"}),
		prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scepd_store_errors_total",
			Help: "Database operations that failed (not counting not-found, conflict, spent-challenge and limit answers), by operation.",
		}, []string{"op"})
}
