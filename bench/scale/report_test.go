package main

import (
	"strings"
	"testing"
	"time"
)

// The report judges each figure at the largest size against the first, and the CPU at
// rest against the base measured with the grants and no requests.
func TestReportVerdicts(t *testing.T) {
	f := func(name string, p50 time.Duration) figure { return figure{name: name, p50: p50, p99: 2 * p50} }
	rep := &report{opts: &options{samples: 5, rest: time.Minute}, server: "vault-1.14.2", cpus: 2,
		restBaseline: restCPU{vault: 300 * time.Millisecond},
		rows: []row{
			{requests: 1000, grants: 10000, figures: []figure{f("audit/requests (all)", 20*time.Millisecond), f("requests mine=true", 10*time.Millisecond), f("approve", 10*time.Millisecond)},
				rest: restCPU{vault: 310 * time.Millisecond}},
			{requests: 100000, grants: 10000, figures: []figure{f("audit/requests (all)", 29*time.Millisecond), f("requests mine=true", 16*time.Millisecond), f("approve", 13*time.Millisecond)},
				rest: restCPU{vault: 800 * time.Millisecond, plugin: 200 * time.Millisecond}},
		},
		grantRows: []row{
			{grants: 1000, figures: []figure{f("grants (all)", 10*time.Millisecond)}},
			{grants: 10000, figures: []figure{f("grants (all)", 60*time.Millisecond)}},
		}}
	out := rep.String()
	for _, want := range []string{
		"audit/requests (all)                          20.0 / 40.0      29.0 / 58.0      1.45  <=1.5x, <=50.0ms   PASS",
		"requests mine=true                            10.0 / 20.0      16.0 / 32.0      1.60  <=1.5x, <=50.0ms   FAIL",
		"approve                                       10.0 / 20.0      13.0 / 26.0      1.30  <=1.2x             FAIL",
		"grants (all)                                  10.0 / 20.0     60.0 / 120.0      6.00  <=1.5x, <=50.0ms   FAIL",
		"1k requests", "100k requests", "10k grants",
		"10k live grants, no requests (base)",
		"0.700 = 1.17% of a core",
		"at the largest size: FAIL",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
}
