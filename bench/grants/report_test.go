package main

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSteadyNeedsAFullMiddleWave(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	// 5 creates at concurrency 2: fewer than 3 waves, no steady middle.
	if ops, d := steady(ms(10, 20, 30, 40, 50), 2); ops != 0 || d != 0 {
		t.Errorf("5 creates at concurrency 2: %d in %s, want none", ops, d)
	}
	// 6 at concurrency 2, out of order: the middle two completed between 20 and 40 ms.
	if ops, d := steady(ms(60, 10, 40, 20, 30, 50), 2); ops != 2 || d != 20*time.Millisecond {
		t.Errorf("6 creates at concurrency 2: %d in %s, want 2 in 20ms", ops, d)
	}
	if ops, _ := steady(ms(10, 20, 30), 0); ops != 0 {
		t.Errorf("concurrency 0 gave %d", ops)
	}
}

func TestBatchSizes(t *testing.T) {
	for _, tc := range []struct {
		total, rounds int
		want          []int
	}{
		{16, 4, []int{4, 4, 4, 4}},
		{48, 3, []int{16, 16, 16}},
		{65, 4, []int{17, 17, 17, 14}},
		{3, 4, []int{1, 1, 1}},
	} {
		if got := batchSizes(tc.total, tc.rounds); !slices.Equal(got, tc.want) {
			t.Errorf("batchSizes(%d, %d) = %v, want %v", tc.total, tc.rounds, got, tc.want)
		}
	}
	// The advice the report gives, -samples=4×concurrency, does fill every batch.
	for _, conc := range []int{1, 4, 16} {
		if got := slices.Min(batchSizes(4*conc, latencyRounds(4*conc, conc))); got < conc {
			t.Errorf("-samples=%d at concurrency %d: smallest batch %d", 4*conc, conc, got)
		}
	}
}

func TestRatePerSecond(t *testing.T) {
	if v, ok := (rate{ops: 30, d: 2 * time.Second}).perSecond(); !ok || v != 15 {
		t.Errorf("30 in 2s = %v, %v", v, ok)
	}
	for _, r := range []rate{{}, {ops: 5}, {d: time.Second}} {
		if _, ok := r.perSecond(); ok {
			t.Errorf("%+v has a rate", r)
		}
	}
}

func baseReport() *report {
	return &report{
		opts:     &options{n: 50, expiry: "aligned", concurrency: []int{1, 4, 16}, samples: []int{16, 16, 16}, tputGrants: 48, tputConc: 16},
		started:  time.Now(),
		finished: time.Now(),
		latency: []latencyRow{
			{conc: 1, n: 16, smallestBatch: 4,
				plugin:   stats{n: 16, p50: 80 * time.Millisecond, p90: 90 * time.Millisecond, p99: 99 * time.Millisecond},
				baseline: stats{n: 16, p50: 75 * time.Millisecond, p90: 85 * time.Millisecond, p99: 95 * time.Millisecond}},
			// -samples=16 at concurrency 16: 4 batches of 4, never 16 requests in flight.
			{conc: 16, n: 16, smallestBatch: 4,
				plugin:   stats{n: 16, p50: 300 * time.Millisecond, p90: 400 * time.Millisecond, p99: 450 * time.Millisecond},
				baseline: stats{n: 16, p50: 200 * time.Millisecond, p90: 300 * time.Millisecond, p99: 350 * time.Millisecond}},
		},
		tputConc: 16, tputN: 48,
		tputPluginWhole:   rate{ops: 48, d: 2 * time.Second},
		tputBaselineWhole: rate{ops: 48, d: 2 * time.Second},
	}
}

// throughputSection is the report's part 2, the throughput figures.
func throughputSection(t *testing.T, text string) string {
	t.Helper()
	i, j := strings.Index(text, "2. Throughput"), strings.Index(text, "4. Plugin")
	if i < 0 || j < i {
		t.Fatalf("no throughput section in:\n%s", text)
	}
	return text[i:j]
}

// TestReportOnTooFewSamples is CI's small run (-tput-n=48 at concurrency 16): no batch has
// a steady middle and no CPU was measured. The report must say so, not print NaN and FAIL.
func TestReportOnTooFewSamples(t *testing.T) {
	text := baseReport().String()
	for _, bad := range []string{"NaN", "Inf"} {
		if strings.Contains(text, bad) {
			t.Errorf("report holds %q:\n%s", bad, text)
		}
	}
	sec := throughputSection(t, text)
	if !strings.Contains(sec, "too few samples for a steady-state figure") || !strings.Contains(sec, "-tput-n ≥ 144") {
		t.Errorf("throughput section does not say why there is no figure:\n%s", sec)
	}
	if strings.Contains(sec, "PASS") || strings.Contains(sec, "FAIL") {
		t.Errorf("throughput section judges a figure it did not measure:\n%s", sec)
	}
	if !strings.Contains(sec, "plugin 24.0/s, baseline 24.0/s, ratio 1.000") {
		t.Errorf("whole-batch figures, which were measured, are missing:\n%s", sec)
	}
	// The latency figure at concurrency 1 was measured: it is judged (80/75 = 1.067 ≤ 1.15).
	// The one at 16 was not (1.500 would FAIL): no batch had 16 requests in flight.
	if !strings.Contains(text, "1.067") || strings.Count(text, "≤1.15 PASS") != 1 || strings.Contains(text, "FAIL") {
		t.Errorf("latency rows judged wrongly:\n%s", text)
	}
	if !strings.Contains(text, "too few samples to judge concurrency 16: batches of 4 grants never had 16 in flight (-samples=64 measures it)") {
		t.Errorf("no reason given for the unjudged latency row:\n%s", text)
	}
}

func TestReportJudgesMeasuredThroughput(t *testing.T) {
	for _, tc := range []struct {
		baselineOps int
		want        string
	}{
		{100, "ratio 0.950 (target ≥ 0.90) PASS"},
		{120, "ratio 0.792 (target ≥ 0.90) FAIL"},
	} {
		r := baseReport()
		r.tputPlugin = rate{ops: 95, d: 4 * time.Second}
		r.tputBaseline = rate{ops: tc.baselineOps, d: 4 * time.Second}
		r.tputPluginCPU = cpuTimes{vault: 70 * time.Millisecond, plugin: 2 * time.Millisecond}
		r.tputBaselineCPU = cpuTimes{vault: 66 * time.Millisecond}
		sec := throughputSection(t, r.String())
		if !strings.Contains(sec, tc.want) || strings.Contains(sec, "too few samples") {
			t.Errorf("want %q in:\n%s", tc.want, sec)
		}
		if !strings.Contains(sec, "baseline/plugin CPU = 0.917") {
			t.Errorf("no CPU cap in:\n%s", sec)
		}
	}
}

// The mixed rows are judged only with enough rounds per worker; a row with too few says
// why, and the sys/metrics line appears only where Vault's metrics were read.
func TestReportJudgesMixedRows(t *testing.T) {
	r := baseReport()
	r.mixed = []mixedRow{
		{conc: 4, n: 200, perWorker: 50, plugin: stats{n: 200, p50: 200 * time.Millisecond}, baseline: stats{n: 200, p50: 100 * time.Millisecond},
			routePlugin: 160, routeUser: 100, metricsOK: true,
			floorN: 90, floorPlugin: stats{n: 90, p50: 90 * time.Millisecond}, floorVault: stats{n: 90, p50: 2 * time.Millisecond}},
		{conc: 16, n: 32, perWorker: 2, plugin: stats{n: 32, p50: 800 * time.Millisecond}, baseline: stats{n: 32, p50: 300 * time.Millisecond}},
	}
	text := r.String()
	sec := text[strings.Index(text, "1b."):strings.Index(text, "2. Throughput")]
	// Without password_hash the mixed rows are judged by the plugin's own share: (200 -
	// 90 - 100) / 100 = 10 %.
	if !regexp.MustCompile(`\n\s+4\s+200\s.*2\.000\s+\(own share, below\)\n`).MatchString(sec) ||
		!strings.Contains(sec, "baseline p50 = 10.0% (target ≤ 15%) PASS") || strings.Contains(sec, "FAIL") {
		t.Errorf("the mixed row is not judged by its own share:\n%s", sec)
	}
	// With password_hash the ratio itself is judged, against 1.0, and throughput against 3x.
	r.passwordHash = true
	r.tputPlugin, r.tputBaseline = rate{ops: 250, d: 4 * time.Second}, rate{ops: 100, d: 4 * time.Second}
	text = r.String()
	sec = text[strings.Index(text, "1b."):strings.Index(text, "2. Throughput")]
	if !regexp.MustCompile(`\n\s+4\s+200\s.*2\.000\s+≤1\.00 FAIL\n`).MatchString(sec) || strings.Contains(sec, "own share") {
		t.Errorf("with password_hash the mixed ratio is not judged against 1.0:\n%s", sec)
	}
	if !strings.Contains(text, "ratio 2.500 (target ≥ 3.00) FAIL") {
		t.Errorf("with password_hash throughput is not judged against 3x:\n%s", text)
	}
	r.passwordHash = false
	if !strings.Contains(sec, "too few samples to judge concurrency 16: 2 rounds per worker (-mixed-samples=64 measures it)") {
		t.Errorf("no reason for the unjudged mixed row:\n%s", sec)
	}
	if !strings.Contains(sec, "at 4, Vault's sys/metrics") || strings.Contains(sec, "at 16, Vault's sys/metrics") {
		t.Errorf("sys/metrics lines:\n%s", sec)
	}
	// The floor: measured at 4 only; (90 + 100) / 100 is the least ratio.
	if !strings.Contains(sec, "at 4, floor (one paced prober, 90 pairs)") || strings.Contains(sec, "at 16, floor") {
		t.Errorf("floor lines:\n%s", sec)
	}
	if !strings.Contains(sec, "90.0 + 100.0 = 190.0 ms, 1.90 x the baseline p50") {
		t.Errorf("no least ratio from the floor:\n%s", sec)
	}
}

// A run of some phases (-only) reports those and no empty sections for the others.
func TestReportShowsOnlyThePhasesThatRan(t *testing.T) {
	r := baseReport()
	r.opts.only = map[string]bool{"mixed": true}
	r.mixed = []mixedRow{{conc: 4, n: 200, perWorker: 50, plugin: stats{n: 200, p50: 200 * time.Millisecond}, baseline: stats{n: 200, p50: 100 * time.Millisecond}}}
	text := r.String()
	for _, absent := range []string{"1. Issue latency", "2. Throughput", "3. Revocation storm", "during 2", "during 3"} {
		if strings.Contains(text, absent) {
			t.Errorf("-only=mixed report has %q:\n%s", absent, text)
		}
	}
	// Memory of the phases that did not run is not "refused": it was never taken.
	for _, present := range []string{"1b. Issue latency mixed", "4. Plugin process peak RSS (VmHWM, reset per phase", "What a grant is made of"} {
		if !strings.Contains(text, present) {
			t.Errorf("-only=mixed report lacks %q:\n%s", present, text)
		}
	}
}
