// Package metrics holds the plugin's numbers for apono/metrics, in Prometheus' text format.
// An external plugin cannot publish into Vault's own telemetry (vault#7259, openbao#2973),
// so the plugin serves them itself, behind Vault's ACL.
//
// Two kinds: counters and histograms of what this process did since it started (grants
// issued and removed, their latency, approvals, sweeper findings, event deliveries), kept
// in memory on the node that did it, as Prometheus counters are; and gauges read from the
// plugin's storage when scraped (live grants, open requests, the oldest pending request,
// events waiting per target), the same on every node.
package metrics

import (
	"bytes"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Namespace starts every metric name.
const Namespace = "apono"

// Metrics are one mount's counters. Build them with New; a nil *Metrics counts nothing.
type Metrics struct {
	registry *prometheus.Registry

	grantsIssued   *prometheus.CounterVec
	grantsEnded    *prometheus.CounterVec
	removeFailures prometheus.Counter
	issueSeconds   prometheus.Histogram
	removeSeconds  prometheus.Histogram
	events         *prometheus.CounterVec
	swept          *prometheus.CounterVec
	deliveries     *prometheus.CounterVec
}

// New registers the counters in a registry of the mount's own, so two mounts in one
// process never share a number.
func New() *Metrics {
	m := &Metrics{registry: prometheus.NewRegistry()}
	m.grantsIssued = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "grants_issued_total",
		Help: "Grants issued by this node since it started, by how they were approved (direct, request, auto_approved, break_glass)."}, []string{"via"})
	m.grantsEnded = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "grants_ended_total",
		Help: "Grants whose objects this node removed, by how they ended (revoked, expired, swept, rolled_back)."}, []string{"ended"})
	m.removeFailures = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "grant_remove_failures_total",
		Help: "Removals of a grant's objects that failed and are left to Vault's retry, the WAL rollback or the sweeper."})
	m.issueSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "grant_issue_seconds",
		Help: "Time to issue a grant (user, entity, policy, record).", Buckets: prometheus.ExponentialBuckets(0.025, 2, 10)})
	m.removeSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "grant_remove_seconds",
		Help: "Time to remove a grant's objects.", Buckets: prometheus.ExponentialBuckets(0.025, 2, 10)})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "events_total",
		Help: "Access-flow events on this node since it started, by type (request.created, request.approved, request.denied, grant.issued, ...), delivered anywhere or not."}, []string{"event"})
	m.swept = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "sweeper_removed_total",
		Help: "What the orphan sweeper removed, by kind (expired_grant, recordless_object, legacy_entity)."}, []string{"kind"})
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "event_deliveries_total",
		Help: "Event deliveries tried by this node, by target (\"\" is notify_url) and result (ok, failed)."}, []string{"target", "result"})
	m.registry.MustRegister(m.grantsIssued, m.grantsEnded, m.removeFailures, m.issueSeconds, m.removeSeconds,
		m.events, m.swept, m.deliveries)
	return m
}

// GrantIssued counts a grant issued through via, which took d.
func (m *Metrics) GrantIssued(via string, d time.Duration) {
	if m == nil {
		return
	}
	m.grantsIssued.WithLabelValues(via).Inc()
	m.issueSeconds.Observe(d.Seconds())
}

// GrantRemoved counts a removal that took d: ended says how the grant ended, or failed.
func (m *Metrics) GrantRemoved(ended string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.removeSeconds.Observe(d.Seconds())
	if err != nil {
		m.removeFailures.Inc()
		return
	}
	if ended == "" {
		ended = "rolled_back"
	}
	m.grantsEnded.WithLabelValues(ended).Inc()
}

// Event counts an access-flow event of type typ.
func (m *Metrics) Event(typ string) {
	if m != nil {
		m.events.WithLabelValues(typ).Inc()
	}
}

// Swept counts n things of kind the sweeper removed.
func (m *Metrics) Swept(kind string, n int) {
	if m != nil && n > 0 {
		m.swept.WithLabelValues(kind).Add(float64(n))
	}
}

// Delivery counts one delivery to target that succeeded or not.
func (m *Metrics) Delivery(target string, ok bool) {
	if m == nil {
		return
	}
	result := "ok"
	if !ok {
		result = "failed"
	}
	m.deliveries.WithLabelValues(target, result).Inc()
}

// Gauge is one number read from storage at scrape time, with its labels.
type Gauge struct {
	Name, Help string
	Labels     map[string]string
	Value      float64
}

// Render writes every counter and the gauges in Prometheus' text exposition format.
func (m *Metrics) Render(gauges []Gauge) ([]byte, error) {
	scrape := prometheus.NewRegistry()
	byName := map[string]*prometheus.GaugeVec{}
	for _, g := range gauges {
		vec := byName[g.Name]
		if vec == nil {
			names := make([]string, 0, len(g.Labels))
			for k := range g.Labels {
				names = append(names, k)
			}
			vec = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: g.Name, Help: g.Help}, names)
			if err := scrape.Register(vec); err != nil {
				return nil, err
			}
			byName[g.Name] = vec
		}
		vec.With(g.Labels).Set(g.Value)
	}
	gatherers := prometheus.Gatherers{scrape}
	if m != nil {
		gatherers = append(gatherers, m.registry)
	}
	families, err := gatherers.Gather()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// ContentType is the Content-Type of what Render writes.
var ContentType = string(expfmt.NewFormat(expfmt.TypeTextPlain))
