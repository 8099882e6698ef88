package metrics

import (
	"bytes"
	"errors"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func parse(t *testing.T, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the output is not Prometheus' text format: %v\n%s", err, body)
	}
	return fams
}

func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("%s missing", name)
	}
next:
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("%s%v missing", name, labels)
	return 0
}

func TestCountersAndGaugesRender(t *testing.T) {
	m := New()
	m.GrantIssued("request", 40*time.Millisecond)
	m.GrantIssued("request", 60*time.Millisecond)
	m.GrantIssued("break_glass", time.Millisecond)
	m.GrantRemoved("revoked", 10*time.Millisecond, nil)
	m.GrantRemoved("", 10*time.Millisecond, nil)
	m.GrantRemoved("expired", 10*time.Millisecond, errors.New("vault down"))
	m.Event("request.created")
	m.Swept("expired_grant", 2)
	m.Swept("recordless_object", 0)
	m.Delivery("", true)
	m.Delivery("slack", false)
	m.Delivery("slack", false)

	body, err := m.Render([]Gauge{
		{Name: "grants_live", Help: "live", Value: 7},
		{Name: "requests_open", Help: "open", Labels: map[string]string{"status": "pending"}, Value: 3},
		{Name: "requests_open", Labels: map[string]string{"status": "approved"}, Value: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	fams := parse(t, body)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"apono_grants_issued_total", map[string]string{"via": "request"}, 2},
		{"apono_grants_issued_total", map[string]string{"via": "break_glass"}, 1},
		{"apono_grant_issue_seconds", nil, 3},
		{"apono_grants_ended_total", map[string]string{"ended": "revoked"}, 1},
		{"apono_grants_ended_total", map[string]string{"ended": "rolled_back"}, 1},
		{"apono_grant_remove_failures_total", nil, 1},
		{"apono_grant_remove_seconds", nil, 3},
		{"apono_events_total", map[string]string{"event": "request.created"}, 1},
		{"apono_sweeper_removed_total", map[string]string{"kind": "expired_grant"}, 2},
		{"apono_event_deliveries_total", map[string]string{"target": "", "result": "ok"}, 1},
		{"apono_event_deliveries_total", map[string]string{"target": "slack", "result": "failed"}, 2},
		{"apono_grants_live", nil, 7},
		{"apono_requests_open", map[string]string{"status": "pending"}, 3},
		{"apono_requests_open", map[string]string{"status": "approved"}, 1},
	} {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if _, ok := fams["apono_grants_ended_total"]; ok {
		for _, mm := range fams["apono_grants_ended_total"].GetMetric() {
			if mm.GetLabel()[0].GetValue() == "expired" {
				t.Error("a failed removal counted as ended")
			}
		}
	}
	if _, ok := fams["apono_sweeper_removed_total"]; ok && len(fams["apono_sweeper_removed_total"].GetMetric()) != 1 {
		t.Error("a sweep that removed nothing made a series")
	}
}

// Each mount counts for itself, and a nil *Metrics counts nothing without failing.
func TestMountsDoNotShareCounters(t *testing.T) {
	a, b := New(), New()
	a.GrantIssued("direct", time.Millisecond)
	body, err := b.Render(nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(body, []byte(`apono_grants_issued_total{via="direct"}`)) {
		t.Fatalf("b shows a's grant:\n%s", body)
	}
	var none *Metrics
	none.GrantIssued("direct", time.Millisecond)
	none.Event("x")
	if _, err := none.Render([]Gauge{{Name: "grants_live", Help: "live", Value: 1}}); err != nil {
		t.Fatal(err)
	}
}
