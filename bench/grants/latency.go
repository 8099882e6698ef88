package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
)

// batchResult is one batch of creates at a fixed concurrency, then removal of what they
// made at the same concurrency. Only the creates count for latency and throughput.
type batchResult struct {
	create []time.Duration // successful creates
	remove []time.Duration // successful removals
	wall   time.Duration   // wall clock of the create phase
	// steadyOps creates completed in steadyTime, the create phase without its first and
	// last wave (conc completions each), while all workers were busy; only batches of at
	// least steadyWaves*conc creates have such a middle (see steadyMin).
	steadyOps  int
	steadyTime time.Duration
	cpu        cpuTimes // CPU used by Vault, the plugin and the client in the create phase
	errors     int
	firstErr   error
}

func (r *batchResult) add(o batchResult) {
	r.create = append(r.create, o.create...)
	r.remove = append(r.remove, o.remove...)
	r.wall += o.wall
	r.steadyOps += o.steadyOps
	r.steadyTime += o.steadyTime
	r.cpu = r.cpu.add(o.cpu)
	r.errors += o.errors
	if r.firstErr == nil {
		r.firstErr = o.firstErr
	}
}

// parallel runs fn(0..n-1) on conc workers.
func parallel(ctx context.Context, conc, n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < conc && w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// runBatch creates n objects with conc workers, timing each create, then removes them.
func (b *bench) runBatch(ctx context.Context, s side, conc, n int) batchResult {
	objs := make([]object, n)
	durs := make([]time.Duration, n)
	done := make([]time.Duration, n) // completion time since start
	okCreate := make([]bool, n)
	var mu sync.Mutex
	var res batchResult
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		res.errors++
		if res.firstErr == nil {
			res.firstErr = fmt.Errorf("%s: %w", s.name(), err)
		}
	}

	cpu0 := b.procs.cpu()
	start := time.Now()
	parallel(ctx, conc, n, func(i int) {
		t0 := time.Now()
		o, err := s.create(ctx)
		durs[i] = time.Since(t0)
		done[i] = time.Since(start)
		objs[i] = o // a failed baseline create may still have made its policy
		if err != nil {
			fail(err)
			return
		}
		okCreate[i] = true
	})
	res.wall = time.Since(start)
	res.steadyOps, res.steadyTime = steady(done, conc)
	res.cpu = b.procs.cpu().sub(cpu0)

	removeDurs := make([]time.Duration, n)
	okRemove := make([]bool, n)
	parallel(ctx, conc, n, func(i int) {
		if objs[i].policy == "" && objs[i].leaseID == "" {
			return
		}
		t0 := time.Now()
		if err := s.remove(ctx, objs[i]); err != nil {
			fail(err)
			return
		}
		removeDurs[i] = time.Since(t0)
		okRemove[i] = okCreate[i]
	})
	for i := range n {
		if okCreate[i] {
			res.create = append(res.create, durs[i])
		}
		if okRemove[i] {
			res.remove = append(res.remove, removeDurs[i])
		}
	}
	if err := ctx.Err(); err != nil {
		res.errors++
		res.firstErr = err
	}
	return res
}

// batchSizes splits total creates into at most rounds batches, the last one smaller when
// they do not divide evenly.
func batchSizes(total, rounds int) []int {
	per := (total + rounds - 1) / rounds
	var out []int
	for r := 0; r < rounds && r*per < total; r++ {
		out = append(out, min(per, total-r*per))
	}
	return out
}

// steadyWaves is how many waves of conc creates a batch needs for a steady-state figure:
// the ramp-up wave and the tail wave are left out, so at least one full wave remains.
const steadyWaves = 3

// steadyMin is the smallest batch that has a steady-state figure at concurrency conc.
func steadyMin(conc int) int { return steadyWaves * conc }

// steady is how many creates completed, and in what time, between the first wave's last
// completion and the last wave's first: done holds each create's completion time since
// the batch began. A batch smaller than steadyMin(conc) has no steady middle: 0, 0.
func steady(done []time.Duration, conc int) (int, time.Duration) {
	n := len(done)
	if conc < 1 || n < steadyMin(conc) {
		return 0, 0
	}
	sorted := append([]time.Duration(nil), done...)
	slices.Sort(sorted)
	return n - 2*conc, sorted[n-conc-1] - sorted[conc-1]
}

// interleaved runs rounds of one plugin batch and one baseline batch, alternating which
// goes first (ABBA...), so drift in the machine's speed hits both sides alike.
func (b *bench) interleaved(ctx context.Context, conc, total, rounds int) (plugin, baseline batchResult) {
	for r, n := range batchSizes(total, rounds) {
		if ctx.Err() != nil {
			break
		}
		if r%2 == 0 {
			plugin.add(b.runBatch(ctx, b.plugin, conc, n))
			baseline.add(b.runBatch(ctx, b.baseline, conc, n))
		} else {
			baseline.add(b.runBatch(ctx, b.baseline, conc, n))
			plugin.add(b.runBatch(ctx, b.plugin, conc, n))
		}
	}
	return plugin, baseline
}

// checkErrors fails the run when a side had errors: a benchmark of failing calls means nothing.
func checkErrors(what string, results ...batchResult) error {
	for _, r := range results {
		if r.errors > 0 {
			return fmt.Errorf("%s: %d failed calls, first: %w", what, r.errors, r.firstErr)
		}
	}
	return nil
}

// latency measures issue latency at each concurrency, plugin beside baseline.
func (b *bench) latency(ctx context.Context, o *options, rep *report) error {
	for i, conc := range o.concurrency {
		samples := o.samples[i]
		progress("issue latency at concurrency %d: %d grants and %d baseline creations, interleaved", conc, samples, samples)
		// Warm up connections and the plugin's client at this concurrency; not counted.
		warmP, warmB := b.interleaved(ctx, conc, conc, 1)
		if err := checkErrors("warm-up", warmP, warmB); err != nil {
			return err
		}
		rounds := latencyRounds(samples, conc)
		p, bl := b.interleaved(ctx, conc, samples, rounds)
		if err := checkErrors(fmt.Sprintf("latency at concurrency %d", conc), p, bl); err != nil {
			return err
		}
		rep.latency = append(rep.latency, latencyRow{
			conc: conc, n: len(p.create), smallestBatch: slices.Min(batchSizes(samples, rounds)),
			pluginCPU: perOp(p.cpu, len(p.create)), baselineCPU: perOp(bl.cpu, len(bl.create)),
			plugin: summarize(p.create), baseline: summarize(bl.create),
			pluginRemove: summarize(p.remove), baselineRemove: summarize(bl.remove),
		})
	}
	return nil
}

// latencyRounds is how many batches per side the latency run at concurrency conc splits
// samples into: batches of about 4 per worker, so load from outside this run lands on both
// sides alike, and at least 4.
func latencyRounds(samples, conc int) int { return max(4, (samples+4*conc-1)/(4*conc)) }

// throughput measures grants per second at one concurrency beside baseline creations.
func (b *bench) throughput(ctx context.Context, o *options, rep *report) error {
	progress("throughput at concurrency %d: %d grants and %d baseline creations, interleaved", o.tputConc, o.tputGrants, o.tputGrants)
	p, bl := b.interleaved(ctx, o.tputConc, o.tputGrants, tputRounds)
	if err := checkErrors("throughput", p, bl); err != nil {
		return err
	}
	rep.tputConc = o.tputConc
	rep.tputN = len(p.create)
	rep.tputPlugin = rate{p.steadyOps, p.steadyTime}
	rep.tputBaseline = rate{bl.steadyOps, bl.steadyTime}
	rep.tputPluginWhole = rate{len(p.create), p.wall}
	rep.tputBaselineWhole = rate{len(bl.create), bl.wall}
	rep.tputPluginCPU, rep.tputBaselineCPU = perOp(p.cpu, len(p.create)), perOp(bl.cpu, len(bl.create))
	return nil
}

// tputRounds is how many plugin and baseline batches the throughput run interleaves.
const tputRounds = 3

// rate is ops completed in d.
type rate struct {
	ops int
	d   time.Duration
}

// perSecond is the rate in operations per second, and false where nothing was measured
// (no operations, or no time to divide by).
func (r rate) perSecond() (float64, bool) {
	if r.ops <= 0 || r.d <= 0 {
		return 0, false
	}
	return float64(r.ops) / r.d.Seconds(), true
}

// perOp divides CPU times by a number of operations.
func perOp(c cpuTimes, n int) cpuTimes {
	if n == 0 {
		return cpuTimes{}
	}
	d := time.Duration(n)
	return cpuTimes{vault: c.vault / d, plugin: c.plugin / d, client: c.client / d}
}

type stats struct {
	n             int
	p50, p90, p99 time.Duration
}

func summarize(d []time.Duration) stats {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return stats{n: len(s), p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99)}
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

// mixed runs conc workers that each, n/conc times over, issue a grant and make the same
// objects directly (in alternating order), then remove both: grants always run among
// direct writes, as on a Vault that other clients keep busy. Only the two creates are
// timed.
func (b *bench) mixed(ctx context.Context, conc, n int) (plugin, baseline batchResult) {
	type pair struct {
		p, bl    time.Duration
		pOK, bOK bool
	}
	out := make([]pair, n)
	var mu sync.Mutex
	fail := func(r *batchResult, name string, err error) {
		mu.Lock()
		defer mu.Unlock()
		r.errors++
		if r.firstErr == nil {
			r.firstErr = fmt.Errorf("%s: %w", name, err)
		}
	}
	cpu0 := b.procs.cpu()
	start := time.Now()
	parallel(ctx, conc, n, func(i int) {
		sides := []side{b.plugin, b.baseline}
		if i%2 == 1 {
			sides[0], sides[1] = sides[1], sides[0]
		}
		var made [2]object
		for k, s := range sides {
			t0 := time.Now()
			o, err := s.create(ctx)
			d := time.Since(t0)
			made[k] = o
			res := &plugin
			if s == side(b.baseline) {
				res = &baseline
			}
			if err != nil {
				fail(res, s.name(), err)
				continue
			}
			if s == side(b.plugin) {
				out[i].p, out[i].pOK = d, true
			} else {
				out[i].bl, out[i].bOK = d, true
			}
		}
		for k, s := range sides {
			if made[k].policy == "" && made[k].leaseID == "" {
				continue
			}
			if err := s.remove(ctx, made[k]); err != nil {
				res := &plugin
				if s == side(b.baseline) {
					res = &baseline
				}
				fail(res, s.name()+" removal", err)
			}
		}
	})
	wall := time.Since(start)
	cpu := b.procs.cpu().sub(cpu0)
	for _, o := range out {
		if o.pOK {
			plugin.create = append(plugin.create, o.p)
		}
		if o.bOK {
			baseline.create = append(baseline.create, o.bl)
		}
	}
	plugin.wall, baseline.wall = wall, wall
	plugin.cpu = cpu
	if err := ctx.Err(); err != nil {
		plugin.errors++
		plugin.firstErr = err
	}
	return plugin, baseline
}

// mixedLatency measures issue latency with grants and direct writes mixed, per level.
func (b *bench) mixedLatency(ctx context.Context, o *options, rep *report) error {
	for i, conc := range o.mixedConc {
		n := o.mixedSamples[i]
		progress("mixed issue latency at concurrency %d: %d grants among %d direct creations", conc, n, n)
		if wp, wb := b.mixed(ctx, conc, conc); wp.errors+wb.errors > 0 { // warm-up, not counted
			return checkErrors("mixed warm-up", wp, wb)
		}
		sampler := b.sampleRoutes(ctx)
		floor := b.probeFloor(ctx)
		p, bl := b.mixed(ctx, conc, n)
		floorErr := floor.finish()
		routePlugin, routeUser, routesOK := sampler.means()
		if err := checkErrors(fmt.Sprintf("mixed latency at concurrency %d", conc), p, bl); err != nil {
			return err
		}
		if floorErr != nil {
			return floorErr
		}
		row := mixedRow{conc: conc, n: len(p.create), perWorker: n / conc,
			plugin: summarize(p.create), baseline: summarize(bl.create),
			floorN: len(floor.plugin), floorPlugin: summarize(floor.plugin), floorVault: summarize(floor.vault)}
		row.routePlugin, row.routeUser, row.metricsOK = routePlugin, routeUser, routesOK
		rep.mixed = append(rep.mixed, row)
	}
	return nil
}

// routeSampler polls Vault's in-memory metrics (the dev server keeps 10 s intervals,
// each read while it fills) during one level of the mixed run, and averages the plugin's
// route and the userpass user create over the intervals that began after the level did.
type routeSampler struct {
	stop chan struct{}
	done chan struct{}
	// by interval: the latest reading of each metric's count and mean
	plugin, user map[string][2]float64
}

func (b *bench) sampleRoutes(ctx context.Context) *routeSampler {
	rs := &routeSampler{stop: make(chan struct{}), done: make(chan struct{}),
		plugin: map[string][2]float64{}, user: map[string][2]float64{}}
	start := time.Now()
	go func() {
		defer close(rs.done)
		for {
			b.readRoutes(ctx, start, rs)
			select {
			case <-rs.stop:
				b.readRoutes(ctx, start, rs)
				return
			case <-time.After(2 * time.Second):
			}
		}
	}()
	return rs
}

// means stops the sampler and returns the count-weighted means, in ms.
func (rs *routeSampler) means() (plugin, user float64, ok bool) {
	close(rs.stop)
	<-rs.done
	avg := func(m map[string][2]float64) (float64, bool) {
		var n, sum float64
		for _, v := range m {
			n += v[0]
			sum += v[0] * v[1]
		}
		if n == 0 {
			return 0, false
		}
		return sum / n, true
	}
	p, okP := avg(rs.plugin)
	u, okU := avg(rs.user)
	return p, u, okP && okU
}

func (b *bench) readRoutes(ctx context.Context, start time.Time, rs *routeSampler) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	resp, err := b.client.Logical().ReadRawWithContext(ctx, "sys/metrics")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	var m struct {
		Timestamp string
		Samples   []struct {
			Name  string
			Count int
			Mean  float64
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return
	}
	at, err := time.Parse("2006-01-02 15:04:05 -0700 MST", m.Timestamp)
	if err != nil || at.Before(start.Truncate(time.Second)) {
		return // an interval that began before this level: it holds other work too
	}
	for _, x := range m.Samples {
		switch x.Name {
		case "vault.route.update.apono-":
			rs.plugin[m.Timestamp] = [2]float64{float64(x.Count), x.Mean}
		case "vault.route.create.auth-userpass-":
			rs.user[m.Timestamp] = [2]float64{float64(x.Count), x.Mean}
		}
	}
}

// floorProbe measures, while a mixed level runs, what being a plugin costs a write before
// the plugin does any work: one prober, paced so it adds little load, alternates
//   - a grant the plugin refuses at once (ttl=-1: a 400 from field checks on the cached
//     role, no call into Vault): Vault's existence check and request, each a gRPC round
//     trip to the plugin, and nothing else; and
//   - the same kind of refused write to a path Vault serves in its own process
//     (sys/policies/acl with no policy: a 400 before any storage).
//
// Every grant pays the first on top of its own user create, so (plugin floor + user
// create) / baseline p50 bounds from below the mixed ratio any plugin can reach.
type floorProbe struct {
	stop, done    chan struct{}
	plugin, vault []time.Duration
	errs          int
	firstErr      error
}

// floorPace is the pause between two probe pairs: a prober that never paused would add a
// fifth (or seventeenth) client to the level it measures.
const floorPace = 100 * time.Millisecond

func (b *bench) probeFloor(ctx context.Context) *floorProbe {
	fp := &floorProbe{stop: make(chan struct{}), done: make(chan struct{})}
	refused := func(path string, data map[string]interface{}) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		t0 := time.Now()
		_, err := b.client.Logical().WriteWithContext(ctx, path, data)
		d := time.Since(t0)
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == 400 {
			return d, nil
		}
		return 0, fmt.Errorf("%s: want a 400, got %v", path, err)
	}
	go func() {
		defer close(fp.done)
		for {
			select {
			case <-fp.stop:
				return
			case <-time.After(floorPace):
			}
			p, errP := refused("apono/grants/"+b.plugin.role, map[string]interface{}{"ttl": -1})
			v, errV := refused("sys/policies/acl/bench-floor", map[string]interface{}{"policy": ""})
			if err := errors.Join(errP, errV); err != nil {
				fp.errs++
				if fp.firstErr == nil {
					fp.firstErr = err
				}
				continue
			}
			fp.plugin = append(fp.plugin, p)
			fp.vault = append(fp.vault, v)
		}
	}()
	return fp
}

// finish stops the prober and returns an error if any probe did not get its 400.
func (fp *floorProbe) finish() error {
	close(fp.stop)
	<-fp.done
	if fp.errs > 0 {
		return fmt.Errorf("floor probe: %d of %d pairs failed, first: %w", fp.errs, fp.errs+len(fp.plugin), fp.firstErr)
	}
	return nil
}
