// Command grants benchmarks the plugin against a real dev Vault it starts itself (issue 5):
// issue latency beside the same Vault work done directly, throughput, a revocation storm,
// revoke-prefix, and the plugin process's peak memory. It prints a table and writes it to
// bench/results/grants-<timestamp>.txt. Run it from the repository (`make bench`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/procstat"
	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

type options struct {
	n            int           // grants in the storm and in the revoke-prefix run
	ttl          time.Duration // storm: from the start of issuing to the common expiry; 0 = auto
	expiry       string        // storm: "aligned" (all expire in the same second) or "same-ttl"
	concurrency  []int
	samples      []int // issue samples per side at each concurrency
	mixedConc    []int // concurrency levels of the mixed run
	mixedSamples []int // grants (and direct creations) per level of the mixed run
	tputGrants   int   // grants per side in the throughput run
	tputConc     int
	stormTimeout time.Duration
	out          string
	keep         bool
	identity     bool // the identity additions in the management policy (and the baseline)
	// only, when set, runs just these phases (latency, mixed, throughput, storm), for
	// working on one figure; the table says which ran.
	only map[string]bool
}

// runs reports whether phase is to be run.
func (o *options) runs(phase string) bool { return len(o.only) == 0 || o.only[phase] }

func parseFlags() (*options, error) {
	o := &options{}
	var conc, samples string
	flag.IntVar(&o.n, "n", 1000, "grants in the revocation storm, and again for revoke-prefix")
	flag.DurationVar(&o.ttl, "ttl", 0, "storm TTL: with -expiry=aligned, time from the start of issuing to the moment all grants expire; "+
		"with -expiry=same-ttl, every grant's TTL (0: long enough to issue all N first, from the measured throughput)")
	flag.StringVar(&o.expiry, "expiry", "aligned", "storm expiry: aligned (each grant asks for the TTL that ends at one common second) or same-ttl")
	flag.StringVar(&conc, "concurrency", "1,4,16", "concurrency levels for issue latency")
	flag.StringVar(&samples, "samples", "100,160,240", "issue samples per side at each concurrency (one number for all, or one per level)")
	var mixedConc, mixedSamples string
	flag.StringVar(&mixedConc, "mixed-concurrency", "4,16", "concurrency levels of the mixed run (each worker: a grant, the same writes directly, cleanup)")
	flag.StringVar(&mixedSamples, "mixed-samples", "400,480", "grants per side at each mixed concurrency (one number for all, or one per level)")
	flag.IntVar(&o.tputGrants, "tput-n", 600, "grants (and baseline creations) in the throughput run")
	flag.IntVar(&o.tputConc, "tput-concurrency", 16, "concurrency of the throughput run and of issuing the storm's grants")
	flag.DurationVar(&o.stormTimeout, "storm-timeout", 5*time.Minute, "give up waiting for the storm's cleanup after this long past the last expiry")
	flag.StringVar(&o.out, "out", "", "results file (default bench/results/grants-<UTC timestamp>.txt in the repository)")
	flag.BoolVar(&o.keep, "keep", false, "keep the Vault server's directory (log, audit log) even on success")
	flag.BoolVar(&o.identity, "identity", true, "give the plugin the identity additions (grant entities, token lookups) and the baseline the same calls; false: the vendor's policy, policy + user only")
	var only string
	flag.StringVar(&only, "only", "", "run only these phases (comma-separated: latency, mixed, throughput, storm); default all")
	flag.Parse()
	if only != "" {
		o.only = map[string]bool{}
		for _, ph := range strings.Split(only, ",") {
			ph = strings.TrimSpace(ph)
			switch ph {
			case "latency", "mixed", "throughput", "storm":
				o.only[ph] = true
			default:
				return nil, fmt.Errorf("-only: %q is not a phase (latency, mixed, throughput, storm)", ph)
			}
		}
	}

	var err error
	if o.concurrency, o.samples, err = levels("-concurrency", conc, "-samples", samples); err != nil {
		return nil, err
	}
	if o.mixedConc, o.mixedSamples, err = levels("-mixed-concurrency", mixedConc, "-mixed-samples", mixedSamples); err != nil {
		return nil, err
	}
	if o.expiry != "aligned" && o.expiry != "same-ttl" {
		return nil, fmt.Errorf("-expiry: %q is not aligned or same-ttl", o.expiry)
	}
	if o.n < 1 || o.tputGrants < 1 || o.tputConc < 1 {
		return nil, errors.New("-n, -tput-n and -tput-concurrency must be at least 1")
	}
	return o, nil
}

// levels reads a list of concurrency levels and the samples to take at each: one number
// for all of them, or one per level.
func levels(concFlag, concText, samplesFlag, samplesText string) (conc, samples []int, err error) {
	if conc, err = intList(concText); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", concFlag, err)
	}
	if samples, err = intList(samplesText); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", samplesFlag, err)
	}
	switch {
	case len(samples) == 1:
		for len(samples) < len(conc) {
			samples = append(samples, samples[0])
		}
	case len(samples) != len(conc):
		return nil, nil, fmt.Errorf("%s: give one number, or one per %s level (%d)", samplesFlag, concFlag, len(conc))
	}
	return conc, samples, nil
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, v)
	}
	return out, nil
}

func main() {
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options) (err error) {
	root, err := testvault.RepoRoot()
	if err != nil {
		return err
	}
	if o.out == "" {
		o.out = filepath.Join(root, "bench", "results", "grants-"+time.Now().UTC().Format("20060102T150405Z")+".txt")
	}
	rep := &report{started: time.Now(), opts: o, cpus: runtime.NumCPU(), loadStart: procstat.LoadAvg()}

	progress("starting a dev %s with the plugin (builds the plugin; the server itself comes from scripts/build-vault.sh)", testvault.ServerName())
	opts := testvault.Options{LogLevel: "info"}
	if testvault.IsOpenBao() {
		// calibrate turns a file audit device on and off around its count; OpenBao does
		// that through the API only with this setting (by default, only from its config).
		opts.Config = "unsafe_allow_api_audit_creation = true\n"
	}
	srv, setup, err := testvault.StartWithPlugin(opts)
	defer testvault.RemoveBuilds()
	if err != nil {
		return err
	}
	defer func() {
		if serr := srv.Stop(); serr != nil && err == nil {
			err = serr
		}
		if err == nil && !o.keep {
			_ = os.RemoveAll(srv.Dir)
		} else {
			fmt.Fprintln(os.Stderr, "bench: Vault's directory (log, audit log) kept at", srv.Dir)
		}
	}()
	rep.vaultVersion = vaultVersion(srv)

	b, err := newBench(ctx, srv, setup, o.identity)
	if err != nil {
		return err
	}
	defer b.procs.stop()
	if err := b.calibrate(ctx, rep); err != nil {
		return err
	}
	if h, err := b.client.Logical().ReadWithContext(ctx, "apono/health"); err == nil && h != nil {
		rep.passwordHash, _ = h.Data["password_hash"].(bool)
	}
	if o.runs("latency") {
		fm := b.procs.startForeign()
		if err := b.latency(ctx, o, rep); err != nil {
			return err
		}
		rep.foreign = append(rep.foreign, phaseLoad{"1 latency", fm.cores()})
	}
	if o.runs("mixed") {
		fm := b.procs.startForeign()
		if err := b.mixedLatency(ctx, o, rep); err != nil {
			return err
		}
		rep.foreign = append(rep.foreign, phaseLoad{"1b mixed", fm.cores()})
	}

	rep.memIdle = b.procs.current()

	if o.runs("throughput") {
		b.procs.resetPeak()
		fm := b.procs.startForeign()
		if err := b.throughput(ctx, o, rep); err != nil {
			return err
		}
		rep.foreign = append(rep.foreign, phaseLoad{"2 throughput", fm.cores()})
		rep.memThroughput = b.procs.peak()
	}

	if o.runs("storm") {
		b.procs.resetPeak()
		fm := b.procs.startForeign()
		if err := b.storm(ctx, o, rep); err != nil {
			return err
		}
		if err := b.revokePrefix(ctx, o, rep); err != nil {
			return err
		}
		rep.foreign = append(rep.foreign, phaseLoad{"3 storm", fm.cores()})
		rep.memStorm = b.procs.peak()
	}
	rep.pluginRestarts = b.procs.restarts()
	rep.logIrrevocable, rep.logRevokeFailures = scanLog(srv.LogPath)

	rep.finished = time.Now()
	rep.loadEnd = procstat.LoadAvg()
	text := rep.String()
	fmt.Print("\n" + text)
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(o.out, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Println("\nwritten to", o.out)
	return nil
}

func progress(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func vaultVersion(srv *testvault.Server) string {
	out, _, err := srv.CLI("", "version")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
}
