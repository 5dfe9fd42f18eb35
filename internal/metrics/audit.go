package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// auditCollectors report the audit log's checkpoints, for alerts: a
// broken chain, or no checkpoint for longer than the interval.
type auditCollectors struct {
	checkpointTime prometheus.Gauge
	checkpointSeq  prometheus.Gauge
	broken         prometheus.Gauge
}

func newAuditCollectors(r *prometheus.Registry) auditCollectors {
	a := auditCollectors{
		checkpointTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "scepd_audit_checkpoint_timestamp_seconds",
			Help: "When this process last signed (or found current) an audit checkpoint, Unix time."}),
		checkpointSeq: prometheus.NewGauge(prometheus.GaugeOpts{Name: "scepd_audit_checkpoint_seq",
			Help: "The audit events the last checkpoint covers."}),
		broken: prometheus.NewGauge(prometheus.GaugeOpts{Name: "scepd_audit_chain_broken",
			Help: "1 when this process found the audit log altered, removed or cut (see the log for the event), else 0."}),
	}
	r.MustRegister(a.checkpointTime, a.checkpointSeq, a.broken)
	return a
}

// AuditVerified records a verified log of seq events at t; broken says
// the verification found a break.
func (m *Metrics) AuditVerified(seq int64, t time.Time, broken bool) {
	if broken {
		m.audit.broken.Set(1)
		return
	}
	m.audit.broken.Set(0)
	m.audit.checkpointSeq.Set(float64(seq))
	m.audit.checkpointTime.Set(float64(t.Unix()))
}
