package main

import (
	"fmt"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// Targets from issue 5.
// mixedMinPerWorker is how many rounds each worker of the mixed run needs before its p50
// is judged: fewer, and the first round's cold start weighs on it.
const mixedMinPerWorker = 4

const (
	targetLatencyRatio = 1.15
	targetTputRatio    = 0.90
	targetStormClean   = 60 * time.Second
)

// Targets of issue 18 for the mixed run and throughput. Where userpass takes password_hash
// the plugin sends a hash and Vault does no bcrypt for a grant, while the baseline still
// writes users with a password: grants must be no slower than the direct writes and three
// times as many per second. Elsewhere (Vault 1.14) every grant pays the floor of being a
// plugin and a user create, and what the plugin adds on top (its own share) is judged.
const (
	targetMixedRatioHashed = 1.0
	targetTputRatioHashed  = 3.0
	targetOwnShare         = 0.15
)

// mixedTarget and tputTarget are the targets for the server the run measured.
func (r *report) mixedTarget() float64 {
	if r.passwordHash {
		return targetMixedRatioHashed
	}
	return 0 // judged by the own share instead
}

func (r *report) tputTarget() float64 {
	if r.passwordHash {
		return targetTputRatioHashed
	}
	return targetTputRatio
}

type latencyRow struct {
	conc, n                      int
	smallestBatch                int // a batch smaller than conc never had conc requests in flight
	plugin, baseline             stats
	pluginRemove, baselineRemove stats
	pluginCPU, baselineCPU       cpuTimes // per issue
}

// mixedRow is one level of the mixed run.
type mixedRow struct {
	conc, n, perWorker int
	plugin, baseline   stats
	// Vault's own timings (sys/metrics over the level), mean ms: the plugin's
	// route (the gRPC round trip to the plugin, the handler inside) and the user create.
	routePlugin, routeUser float64
	metricsOK              bool
	// the floor probe over the level (floorProbe): refused writes, the plugin's and Vault's
	floorN                  int
	floorPlugin, floorVault stats
}

// phaseLoad is how many CPUs processes other than this benchmark's kept busy in a phase.
type phaseLoad struct {
	phase string
	cores float64
}

type namedStats struct {
	name string
	s    stats
	cpu  *cpuTimes // per call, when measured
}

type report struct {
	opts               *options
	started, finished  time.Time
	cpus               int
	loadStart, loadEnd string
	vaultVersion       string
	// passwordHash: the plugin sends grant passwords as password_hash (apono/health), so
	// the issue 18 targets for such servers apply.
	passwordHash             bool
	callsPerGrant            []callCount
	callsPerRevoke           []callCount
	singleCalls              []namedStats
	pairCPU                  cpuTimes // per policy+user create and delete, one at a time
	latency                  []latencyRow
	mixed                    []mixedRow
	tputConc, tputN          int
	tputPlugin, tputBaseline rate // steady state
	tputPluginWhole          rate // whole batches, ramp-up and tail included
	tputBaselineWhole        rate
	tputPluginCPU            cpuTimes
	tputBaselineCPU          cpuTimes
	storm                    *stormResult
	prefix                   *prefixResult
	memIdle, memThroughput   memPeak
	memStorm                 memPeak
	pluginRestarts           int
	logIrrevocable           int
	logRevokeFailures        int
	foreign                  []phaseLoad
}

// ratio is a/b, and false where b is not a positive figure (nothing was measured).
func ratio(a, b float64) (float64, bool) {
	if !(b > 0) || math.IsInf(a, 0) || math.IsNaN(a) || math.IsInf(b, 0) {
		return 0, false
	}
	return a / b, true
}

// rateRatio is the ratio of two rates, and false unless both were measured.
func rateRatio(a, b rate) (float64, bool) {
	x, okA := a.perSecond()
	y, okB := b.perSecond()
	if !okA || !okB {
		return 0, false
	}
	return ratio(x, y)
}

// perSecondText formats a rate, or "n/a" where nothing was measured.
func perSecondText(r rate) string {
	v, ok := r.perSecond()
	if !ok {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", v)
}

// ratioText formats a ratio with 3 decimals, or "n/a".
func ratioText(v float64, ok bool) string {
	if !ok {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", v)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

// mb formats kB as MB; a negative kB is a figure /proc did not give.
func mb(kb int64) string {
	if kb < 0 {
		return "? MB"
	}
	return fmt.Sprintf("%.1f MB", float64(kb)/1024)
}

func (r *report) String() string {
	var sb strings.Builder
	p := func(format string, args ...interface{}) { fmt.Fprintf(&sb, format+"\n", args...) }

	p("vault-plugin-apono grant benchmark (make bench), %s", r.started.UTC().Format("2006-01-02 15:04 UTC"))
	p("%s, %d CPUs, load average (1/5/15 min) %s at start, %s at end; run took %s",
		r.vaultVersion, r.cpus, r.loadStart, r.loadEnd, r.finished.Sub(r.started).Round(time.Second))
	p("identity additions: %v (plugin and baseline alike)", r.opts.identity)
	p("flags: -n=%d -expiry=%s -ttl=%s -concurrency=%s -samples=%s -mixed-concurrency=%s -mixed-samples=%s -tput-n=%d -tput-concurrency=%d",
		r.opts.n, r.opts.expiry, r.opts.ttl, joinInts(r.opts.concurrency), joinInts(r.opts.samples),
		joinInts(r.opts.mixedConc), joinInts(r.opts.mixedSamples), r.opts.tputGrants, r.opts.tputConc)
	var loads []string
	for _, f := range r.foreign {
		loads = append(loads, fmt.Sprintf("%s %.2f", f.phase, f.cores))
	}
	p("CPUs kept busy by other processes (not Vault, the plugin or this program), by phase: %s", strings.Join(loads, ", "))
	p("")

	r.latencySection(p, &sb)
	r.mixedSection(p, &sb)
	r.throughputSection(p)
	r.stormSection(p)
	r.memorySection(p)

	p("What a grant is made of (audit log of %d grants; calls the plugin makes into Vault):", calibrationGrants)
	p("   per grant:  %s", formatCalls(r.callsPerGrant))
	p("   per revoke: %s", formatCalls(r.callsPerRevoke))
	p("   single calls, one at a time, root client:")
	for _, c := range r.singleCalls {
		cpu := ""
		if c.cpu != nil {
			cpu = fmt.Sprintf("  CPU %s ms (Vault %s, client %s)", ms(c.cpu.total()), ms(c.cpu.vault), ms(c.cpu.client))
		}
		p("     %-38s p50 %6s ms  p90 %6s ms%s", c.name, ms(c.s.p50), ms(c.s.p90), cpu)
	}
	p("     CPU of one policy+user create and delete: %s ms (Vault %s, client %s)",
		ms(r.pairCPU.total()), ms(r.pairCPU.vault), ms(r.pairCPU.client))
	return sb.String()
}

func formatCalls(calls []callCount) string {
	if len(calls) == 0 {
		return "none"
	}
	var parts []string
	for _, c := range calls {
		parts = append(parts, fmt.Sprintf("%s ×%.1f", c.call, c.per))
	}
	return strings.Join(parts, ", ")
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}

// latencyCells is a latency row's cells up to the verdict: the p50 ratio is judged against
// its target unless nothing was measured or tooFew says why the samples cannot judge it.
func latencyCells(conc, n int, plugin, baseline stats, tooFew string, target float64) string {
	x, ok := ratio(float64(plugin.p50), float64(baseline.p50))
	judged := "n/a"
	switch {
	case !ok || plugin.n == 0:
	case tooFew != "":
		judged = "too few"
	default:
		judged = verdict(x <= target)
	}
	if target <= 0 {
		return fmt.Sprintf("%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t(own share, below)", conc, n,
			ms(plugin.p50), ms(plugin.p90), ms(plugin.p99), ms(baseline.p50), ms(baseline.p90), ms(baseline.p99), ratioText(x, ok))
	}
	return fmt.Sprintf("%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t≤%.2f %s", conc, n,
		ms(plugin.p50), ms(plugin.p90), ms(plugin.p99), ms(baseline.p50), ms(baseline.p90), ms(baseline.p99),
		ratioText(x, ok), target, judged)
}

// latencySection is part 1: alternating batches.
func (r *report) latencySection(p func(string, ...interface{}), sb *strings.Builder) {
	if !r.opts.runs("latency") {
		return
	}
	p("1. Issue latency, ms. plugin: one `write apono/grants/%s` over HTTP; baseline: the same", roleLatency)
	p("   JSON policy write, userpass user create, identity entity and alias writes (and a token")
	p("   lookup every 5 s), one after the other, by the same root client. Batches alternate")
	p("   plugin/baseline. Only the issue is timed; removal follows each batch and is shown apart")
	p("   (plugin: sys/leases/revoke, which runs the plugin's Revoke; baseline: delete policy, user")
	p("   and entity).")
	tw := tabwriter.NewWriter(sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "   conc\tn/side\tplugin p50\tp90\tp99\tbaseline p50\tp90\tp99\tp50 ratio\ttarget\tCPU ms/op plugin\tbaseline\t")
	var notAtConc []string
	for _, row := range r.latency {
		tooFew := ""
		if row.smallestBatch < row.conc {
			tooFew = fmt.Sprintf("concurrency %d: batches of %d grants never had %d in flight (-samples=%d measures it)",
				row.conc, row.smallestBatch, row.conc, 4*row.conc)
			notAtConc = append(notAtConc, tooFew)
		}
		fmt.Fprintf(tw, "   %s\t%s\t%s\t\n", latencyCells(row.conc, row.n, row.plugin, row.baseline, tooFew, targetLatencyRatio),
			ms(row.pluginCPU.total()), ms(row.baselineCPU.total()))
	}
	tw.Flush()
	for _, n := range notAtConc {
		p("   too few samples to judge %s", n)
	}
	p("   removal, ms (not in the ratio above):")
	tw = tabwriter.NewWriter(sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "   conc\tplugin revoke p50\tp90\tp99\tbaseline delete p50\tp90\tp99\t")
	for _, row := range r.latency {
		fmt.Fprintf(tw, "   %d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", row.conc,
			ms(row.pluginRemove.p50), ms(row.pluginRemove.p90), ms(row.pluginRemove.p99),
			ms(row.baselineRemove.p50), ms(row.baselineRemove.p90), ms(row.baselineRemove.p99))
	}
	tw.Flush()
	p("")
}

// mixedSection is part 1b: grants among direct writes, and the floor under them.
func (r *report) mixedSection(p func(string, ...interface{}), sb *strings.Builder) {
	if !r.opts.runs("mixed") {
		return
	}
	p("1b. Issue latency mixed with direct writes, ms: each worker issues a grant, makes the same")
	p("   objects directly (the order alternates), removes both, and again; grants always run")
	p("   among direct writes, as on a Vault other clients keep busy.")
	tw := tabwriter.NewWriter(sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "   conc\tn/side\tplugin p50\tp90\tp99\tbaseline p50\tp90\tp99\tp50 ratio\ttarget\t")
	var fewMixed []string
	for _, row := range r.mixed {
		tooFew := ""
		if row.perWorker < mixedMinPerWorker {
			tooFew = fmt.Sprintf("concurrency %d: %d rounds per worker (-mixed-samples=%d measures it)",
				row.conc, row.perWorker, mixedMinPerWorker*row.conc)
			fewMixed = append(fewMixed, tooFew)
		}
		fmt.Fprintf(tw, "   %s\t\n", latencyCells(row.conc, row.n, row.plugin, row.baseline, tooFew, r.mixedTarget()))
	}
	tw.Flush()
	for _, n := range fewMixed {
		p("   too few samples to judge %s", n)
	}
	for _, row := range r.mixed {
		if row.metricsOK {
			p("   at %d, Vault's sys/metrics over the level, mean: route.update.apono- %.1f ms (Vault hands the request to the", row.conc, row.routePlugin)
			p("   plugin over gRPC and waits), route.create.auth-userpass- %.1f ms (a userpass user create, bcrypt)", row.routeUser)
		}
		if row.floorN > 0 {
			p("   at %d, floor (one paced prober, %d pairs): a grant the plugin refuses at once, doing no Vault work (ttl=-1:", row.conc, row.floorN)
			p("   Vault's existence check and request, two gRPC round trips) p50 %s p90 %s; the same refused write to a path Vault",
				ms(row.floorPlugin.p50), ms(row.floorPlugin.p90))
			p("   serves itself (sys/policies/acl, no policy) p50 %s p90 %s", ms(row.floorVault.p50), ms(row.floorVault.p90))
			if row.metricsOK && row.baseline.p50 > 0 {
				floor := float64(row.floorPlugin.p50) / float64(time.Millisecond)
				least := floor + row.routeUser
				base := float64(row.baseline.p50) / float64(time.Millisecond)
				p("   every grant pays that floor and a user create: %.1f + %.1f = %.1f ms, %.2f x the baseline p50, the least", floor, row.routeUser, least,
					least/base)
				p("   ratio any plugin could show here")
				if !r.passwordHash {
					share := (float64(row.plugin.p50)/float64(time.Millisecond) - least) / base
					p("   the plugin's own share: (grant p50 %s - floor - user create) / baseline p50 = %.1f%% (target ≤ %.0f%%) %s",
						ms(row.plugin.p50), share*100, targetOwnShare*100, verdict(share <= targetOwnShare))
				}
			}
		}
	}
	p("")
}

// throughputSection is part 2.
func (r *report) throughputSection(p func(string, ...interface{})) {
	if !r.opts.runs("throughput") {
		return
	}
	p("2. Throughput at concurrency %d (%d per side in %d interleaved batches), steady state (each batch",
		r.tputConc, r.tputN, tputRounds)
	if x, ok := rateRatio(r.tputPlugin, r.tputBaseline); ok {
		p("   without its first and last %d completions): plugin %s grants/s, baseline %s policy+user",
			r.tputConc, perSecondText(r.tputPlugin), perSecondText(r.tputBaseline))
		p("   creations/s; ratio %.3f (target ≥ %.2f) %s", x, r.tputTarget(), verdict(x >= r.tputTarget()))
	} else {
		p("   without its first and last %d completions): too few samples for a steady-state figure;", r.tputConc)
		p("   a batch needs at least %d grants at concurrency %d (-tput-n ≥ %d), so the ratio is not judged",
			steadyMin(r.tputConc), r.tputConc, tputRounds*steadyMin(r.tputConc))
	}
	x, ok := rateRatio(r.tputPluginWhole, r.tputBaselineWhole)
	p("   whole batches, ramp-up and tail included: plugin %s/s, baseline %s/s, ratio %s",
		perSecondText(r.tputPluginWhole), perSecondText(r.tputBaselineWhole), ratioText(x, ok))
	p("   CPU per op (all processes on the box that do the work: Vault, plugin, this client):")
	p("   plugin %s ms = Vault %s + plugin %s + client %s; baseline %s ms = Vault %s + client %s;",
		ms(r.tputPluginCPU.total()), ms(r.tputPluginCPU.vault), ms(r.tputPluginCPU.plugin), ms(r.tputPluginCPU.client),
		ms(r.tputBaselineCPU.total()), ms(r.tputBaselineCPU.vault), ms(r.tputBaselineCPU.client))
	p("   on a CPU-bound box that caps the ratio at baseline/plugin CPU = %s",
		ratioText(ratio(float64(r.tputBaselineCPU.total()), float64(r.tputPluginCPU.total()))))
	p("")
}

// stormSection is part 3: the revocation storm and revoke -prefix.
func (r *report) stormSection(p func(string, ...interface{})) {
	if !r.opts.runs("storm") {
		return
	}
	if s := r.storm; s != nil {
		how := fmt.Sprintf("each asked for the TTL ending at one common second, %s after issuing began", s.ttl)
		if s.mode == "same-ttl" {
			how = fmt.Sprintf("each with ttl=%s", s.ttl)
		}
		p("3. Revocation storm: %d grants of role %s (%s),", s.issued, roleStorm, how)
		late := ""
		if s.mode == "aligned" {
			late = fmt.Sprintf(" (%d issued too late for the common second)", s.late)
		}
		p("   issued at concurrency %d in %s; expiries spread over %s%s.",
			r.tputConc, s.issueTime.Round(100*time.Millisecond), s.lastExpiry.Sub(s.firstExpiry).Round(100*time.Millisecond), late)
		if s.pollStartLate > 0 {
			p("   (polling began %s after the first expiry: -ttl was shorter than issuing took)", s.pollStartLate.Round(100*time.Millisecond))
		}
		if s.allGone {
			p("   every user and policy gone %s after the last expiry (%s after the first); target ≤ %s %s",
				s.goneAfterLast.Round(100*time.Millisecond), s.goneAfterFirst.Round(100*time.Millisecond), targetStormClean,
				verdict(s.goneAfterLast <= targetStormClean))
		} else {
			p("   NOT all gone %s after the last expiry; target ≤ %s FAIL", s.goneAfterLast.Round(time.Second), targetStormClean)
		}
		p("   peak left (expired, user or policy still there): %d; left at the last expiry: %d", s.peakBacklog, s.leftAtLast)
		p("   irrevocable leases (sys/leases/count): %d (target 0) %s; leases still under the prefix: %d",
			s.irrevocable, verdict(s.irrevocable == 0), s.leasesLeft)
		p("   server log: %d lines mention \"irrevocable\", %d \"failed to revoke lease\"", r.logIrrevocable, r.logRevokeFailures)
	}
	if x := r.prefix; x != nil {
		gone := fmt.Sprintf("all users and policies gone %s after it began", x.gone.Round(100*time.Millisecond))
		if !x.allGone {
			gone = fmt.Sprintf("NOT all gone after %s", x.gone.Round(time.Second))
		}
		p("   revoke -prefix apono/grants/%s on %d grants (issued in %s): the synchronous call took %s;",
			rolePrefix, x.issued, x.issueTime.Round(100*time.Millisecond), x.call.Round(100*time.Millisecond))
		p("   %s; leases left: %d", gone, x.leases)
	}
	p("")
}

// memorySection is part 4: peak RSS during the phases that ran.
func (r *report) memorySection(p func(string, ...interface{})) {
	how := "VmHWM, reset per phase through clear_refs"
	if (r.opts.runs("throughput") && !r.memThroughput.exact) || (r.opts.runs("storm") && !r.memStorm.exact) {
		how = "largest VmRSS sampled every 100 ms (clear_refs refused)"
	}
	plugin := []string{"idle " + mb(r.memIdle.pluginKB)}
	vault := []string{"idle " + mb(r.memIdle.vaultKB)}
	if r.opts.runs("throughput") {
		plugin = append(plugin, "during 2: "+mb(r.memThroughput.pluginKB))
		vault = append(vault, "peak during 2: "+mb(r.memThroughput.vaultKB))
	}
	if r.opts.runs("storm") {
		plugin = append(plugin, "during 3: "+mb(r.memStorm.pluginKB))
		vault = append(vault, "during 3: "+mb(r.memStorm.vaultKB))
	}
	p("4. Plugin process peak RSS (%s): %s.", how, strings.Join(plugin, "; "))
	p("   Vault server for comparison: %s. Plugin restarts: %d.", strings.Join(vault, ", "), r.pluginRestarts)
	p("")
}
