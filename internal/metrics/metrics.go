// Package metrics exposes scepd's Prometheus metrics from its own registry
// (no global state): enrollments by profile, message type and outcome,
// request latency, overload refusals, MDM challenges, certificate counts
// computed by the store at scrape time, and build info.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/scepd/scepd/internal/store"
)

// Stats is the store query behind the certificate gauges.
type Stats interface {
	CertificateStats(ctx context.Context, now time.Time, expiringWithin time.Duration) ([]store.CertificateStat, error)
	ListProfiles(ctx context.Context) ([]store.Profile, error)
	ChallengeCounts(ctx context.Context, profileID string, now time.Time) (pending, used, expired int, err error)
}

// Metrics holds the collectors.
type Metrics struct {
	registry   *prometheus.Registry
	operations *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	challenges *prometheus.CounterVec
	events     *prometheus.CounterVec
	limits     *prometheus.CounterVec
	upstreams  *prometheus.CounterVec
	upstreamT  *prometheus.HistogramVec

	storeSeconds *prometheus.HistogramVec
	storeErrors  *prometheus.CounterVec
	audit        auditCollectors
}

// Build describes the running binary for scepd_build_info.
type Build struct {
	Version   string
	GoVersion string
	// CryptoEngine is the engine signing with file-held keys: go or openssl.
	CryptoEngine string
}

// New registers every collector on a fresh registry. overloaded reports the
// server's count of 503 answers.
func New(build Build, st Stats, overloaded func() float64) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scepd_pkioperations_total",
			Help: "PKIOperations answered, by profile, message type and outcome (success, pending, failure:<failInfo>, overloaded, unavailable, http-400, http-5xx).",
		}, []string{"profile", "message_type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scepd_pkioperation_duration_seconds",
			Help:    "Time to answer a PKIOperation.",
			Buckets: []float64{.002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5},
		}, []string{"profile", "message_type"}),
		challenges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scepd_challenges_issued_total",
			Help: "One-time challenges handed to MDMs, by profile and way (api, ndes, jamf).",
		}, []string{"profile", "via"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scepd_events_total",
			Help: "Event deliveries by sink, event type and outcome (delivered, retry, dropped).",
		}, []string{"sink", "type", "outcome"}),
		limits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scepd_limits_total",
			Help: "Requests stopped by a limit, by profile, endpoint (enroll, ndes, jamf) and kind: lockout (an address used up its failed attempts), blocked (an attempt refused unchecked while locked out) or rate (challenges minted too fast).",
		}, []string{"profile", "endpoint", "kind"}),
		upstreams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scepd_upstream_requests_total",
			Help: "Requests to upstream CAs (RA mode), by upstream and outcome: issued, failed, or pending (each PENDING answer polled again).",
		}, []string{"upstream", "outcome"}),
		upstreamT: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scepd_upstream_duration_seconds",
			Help:    "Time an upstream CA took to issue or fail, polling included.",
			Buckets: []float64{.01, .02, .05, .1, .2, .5, 1, 2, 5, 10, 20},
		}, []string{"upstream"}),
	}
	m.storeSeconds, m.storeErrors = newStoreCollectors()
	m.audit = newAuditCollectors(m.registry)
	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: "scepd_build_info", Help: "Build information: version, Go toolchain and the engine signing with file-held keys (go or openssl).",
		ConstLabels: prometheus.Labels{"version": build.Version, "go": build.GoVersion, "crypto_engine": build.CryptoEngine}})
	info.Set(1)
	m.registry.MustRegister(m.operations, m.duration, m.challenges, m.events, m.limits, m.upstreams, m.upstreamT, m.storeSeconds, m.storeErrors, info,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "scepd_overloaded_total", Help: "PKIOperations answered 503 because all slots were busy."}, overloaded),
		&certCollector{st: st})
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// Observe records one PKIOperation.
func (m *Metrics) Observe(profile, messageType, outcome string, d time.Duration) {
	m.operations.WithLabelValues(profile, messageType, outcome).Inc()
	m.duration.WithLabelValues(profile, messageType).Observe(d.Seconds())
}

// Upstream records one exchange with an upstream CA (server.Overrides.ObserveUpstream).
func (m *Metrics) Upstream(upstream, outcome string, took time.Duration) {
	m.upstreams.WithLabelValues(upstream, outcome).Inc()
	if outcome != "pending" {
		m.upstreamT.WithLabelValues(upstream).Observe(took.Seconds())
	}
}

// Event records an event delivery attempt's outcome.
func (m *Metrics) Event(sink, typ, outcome string) {
	m.events.WithLabelValues(sink, typ, outcome).Inc()
}

// Challenge records a challenge handed out.
func (m *Metrics) Challenge(profile, via string) { m.challenges.WithLabelValues(profile, via).Inc() }

// Limit counts a request stopped by a lockout or a rate limit.
func (m *Metrics) Limit(profile, endpoint, kind string) {
	m.limits.WithLabelValues(profile, endpoint, kind).Inc()
}

var (
	certsDesc    = prometheus.NewDesc("scepd_certificates", "Certificates by profile and status.", []string{"profile", "status"}, nil)
	expiringDesc = prometheus.NewDesc("scepd_certificates_expiring_30d", "Valid certificates expiring within 30 days.", []string{"profile"}, nil)
	// Used challenges are never purged, so state="used" only grows: it
	// counts redemptions; expired unused ones are purged within a minute.
	challengeStateDesc = prometheus.NewDesc("scepd_challenges", "One-time challenges of dynamic profiles by state (pending, used = redeemed, expired = not yet purged).", []string{"profile", "state"}, nil)
)

// certCollector asks the store at scrape time (one grouped query).
type certCollector struct{ st Stats }

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- certsDesc
	ch <- expiringDesc
	ch <- challengeStateDesc
}

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stats, err := c.st.CertificateStats(ctx, time.Now(), 30*24*time.Hour)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(certsDesc, err)
		return
	}
	for _, s := range stats {
		ch <- prometheus.MustNewConstMetric(certsDesc, prometheus.GaugeValue, float64(s.Valid), s.ProfileID, store.CertValid)
		ch <- prometheus.MustNewConstMetric(certsDesc, prometheus.GaugeValue, float64(s.Revoked), s.ProfileID, store.CertRevoked)
		ch <- prometheus.MustNewConstMetric(expiringDesc, prometheus.GaugeValue, float64(s.Expiring), s.ProfileID)
	}
	profiles, err := c.st.ListProfiles(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(challengeStateDesc, err)
		return
	}
	for _, p := range profiles {
		if p.ChallengeMode != store.ChallengeDynamic {
			continue
		}
		pending, used, expired, err := c.st.ChallengeCounts(ctx, p.ID, time.Now())
		if err != nil {
			ch <- prometheus.NewInvalidMetric(challengeStateDesc, err)
			return
		}
		for state, n := range map[string]int{"pending": pending, "used": used, "expired": expired} {
			ch <- prometheus.MustNewConstMetric(challengeStateDesc, prometheus.GaugeValue, float64(n), p.ID, state)
		}
	}
}
