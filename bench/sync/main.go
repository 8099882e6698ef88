// Command sync is `make bench-sync`: it starts a dev Vault with the plugin (the vendor's
// setup, the plugin on the apono-plugin AppRole alone), fills KV v2 with synthetic trees
// of growing size and, at each size, times the plugin's apono/sync beside a plain
// sequential recursive walk made with the same Vault API client, and compares their
// memory and the calls they made. It prints a table and writes it to bench/results/.
//
// Sizes are cumulative: the tree grows from one size to the next, so 100,000 secrets cost
// 100,000 writes in all. The shape is team/app/env/secret, 100 secrets per app folder.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/apono-io/vault-plugin-apono/internal/procstat"
	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

var (
	sizesFlag   = flag.String("sizes", "1000,10000,100000", "comma-separated numbers of secrets, ascending (the tree grows from one to the next)")
	writers     = flag.Int("writers", 32, "concurrent writers filling KV")
	concurrency = flag.Int("concurrency", 0, "the plugin's sync_concurrency (0: its default)")
	outDir      = flag.String("out", "bench/results", "directory for the result table")
	latency     = flag.Int("storage-latency", 0, "milliseconds added to every storage operation of the dev Vault (-dev-latency, cache off), to mimic a slower storage backend")
	maxRequest  = flag.Duration("max-request-duration", 30*time.Minute, "Vault's default_max_request_duration (0: Vault's 90s, and apono/sync's own 80s timeout); apono/sync runs within one request, given the same timeout (at most 30m)")
)

const kvMount = "kv"

func main() {
	flag.Parse()
	sizes, err := parseSizes(*sizesFlag)
	if err != nil {
		fatal(err)
	}
	code := 0
	if err := run(sizes); err != nil {
		fmt.Fprintln(os.Stderr, "bench-sync:", err)
		code = 1
	}
	_ = testvault.RemoveBuilds()
	os.Exit(code)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench-sync:", err)
	os.Exit(2)
}

func progress(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || (len(out) > 0 && n <= out[len(out)-1]) {
			return nil, fmt.Errorf("-sizes %q: want ascending positive numbers", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// row is one size's measurements.
type row struct {
	secrets, entries int
	fill             time.Duration

	pluginTime                     time.Duration
	pluginLists, pluginReads       int64
	pluginRSSBefore, pluginRSSPeak int64         // kB
	pluginCPU, vaultCPU            time.Duration // CPU used during the sync
	seqVaultCPU                    time.Duration
	pluginErr                      string
	seqTime, seqListOnlyTime       time.Duration
	seqLists, seqReads, seqEntries int64
	seqAlloc                       uint64 // bytes allocated by the walk (Go heap)
	seqRSSBefore, seqRSSPeak       int64  // kB, this process
	seqListOnlyLists               int64
}

func run(sizes []int) error {
	ctx := context.Background()
	progress("starting a dev Vault with the plugin (builds it on first use)")
	opts := testvault.Options{LogLevel: "warn"}
	// A dev server merges -config files into its own configuration.
	var hcl string
	if *maxRequest > 0 {
		hcl += fmt.Sprintf("default_max_request_duration = %q\n", maxRequest.String())
	}
	if *latency > 0 {
		// Vault's read cache would hide the latency from every read but the first.
		hcl += "disable_cache = true\n"
		opts.ExtraArgs = append(opts.ExtraArgs, "-dev-latency="+strconv.Itoa(*latency))
	}
	if hcl != "" {
		dir, err := os.MkdirTemp("", "bench-sync-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		extra := filepath.Join(dir, "extra.hcl")
		if err := os.WriteFile(extra, []byte(hcl), 0o600); err != nil {
			return err
		}
		opts.ExtraArgs = append(opts.ExtraArgs, "-config="+extra)
	}
	srv, setup, err := testvault.StartWithPlugin(opts)
	if err != nil {
		return err
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			progress("stopping Vault: %v", err)
		}
		_ = os.RemoveAll(srv.Dir)
	}()

	client, err := benchClient(srv)
	if err != nil {
		return err
	}
	// Only kv is walked: the dev server's secret/ mount would be a skipped mount.
	if err := client.Sys().UnmountWithContext(ctx, "secret"); err != nil {
		return err
	}
	args := []string{"write", "apono/config", "vault_addr=" + srv.URL(), "role_id=" + setup.RoleID, "secret_id=" + setup.SecretID,
		"sync_interval=0", "max_resources=1000000", "owner_metadata_key=owner", "integration_owner=bench@example.com"}
	if *concurrency > 0 {
		args = append(args, "sync_concurrency="+strconv.Itoa(*concurrency))
	}
	if _, _, err := srv.CLI("", args...); err != nil {
		return err
	}
	cfg, err := client.Logical().ReadWithContext(ctx, "apono/config")
	if err != nil {
		return err
	}
	pluginConcurrency := fmt.Sprint(cfg.Data["sync_concurrency"])
	// The sequential walk runs as the plugin does, on an apono-plugin AppRole token, so
	// both pay for the same ACL checks; the client is a clone sharing the connections.
	walker, err := client.Clone()
	if err != nil {
		return err
	}
	login, err := client.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]interface{}{"role_id": setup.RoleID, "secret_id": setup.SecretID})
	if err != nil {
		return err
	}
	walker.SetToken(login.Auth.ClientToken)
	vaultPID, err := srv.PID()
	if err != nil {
		return err
	}
	pluginPID, err := srv.PluginPID()
	if err != nil {
		return err
	}
	maxReq := "90s (Vault's default)"
	if *maxRequest > 0 {
		maxReq = maxRequest.String()
	}
	storage := "in-memory storage"
	if *latency > 0 {
		storage += fmt.Sprintf(" + %d ms per storage operation, cache off", *latency)
	}
	env := fmt.Sprintf("%s dev server (%s), %d CPUs, load average at start %s, %s, plugin sync_concurrency %s, %d writers, max request duration %s",
		testvault.ServerName(), storage, runtime.NumCPU(), procstat.LoadAvg(), runtime.Version(), pluginConcurrency, *writers, maxReq)
	progress("%s", env)

	var rows []row
	filled := 0
	for _, size := range sizes {
		r := row{secrets: size}
		progress("writing secrets %d..%d", filled, size-1)
		began := time.Now()
		if err := fill(ctx, client, filled, size); err != nil {
			return err
		}
		r.fill = time.Since(began)
		progress("  %d writes took %s (%.0f/s)", size-filled, r.fill.Round(time.Millisecond), float64(size-filled)/r.fill.Seconds())
		filled = size

		progress("  plugin sync")
		if err := measurePlugin(ctx, client, pluginPID, vaultPID, &r); err != nil {
			r.pluginErr = err.Error()
			progress("  plugin sync failed: %v", err)
		}
		progress("  sequential walk, LIST and metadata read")
		vaultCPU := procstat.CPUTime(vaultPID)
		if err := measureSequential(ctx, walker, &r, true); err != nil {
			return err
		}
		r.seqVaultCPU = procstat.CPUTime(vaultPID) - vaultCPU
		progress("  sequential walk, LIST only")
		if err := measureSequential(ctx, walker, &r, false); err != nil {
			return err
		}
		rows = append(rows, r)
		progress("  plugin %s, sequential %s", r.pluginTime.Round(time.Millisecond), r.seqTime.Round(time.Millisecond))
	}
	return report(rows, env)
}

// benchClient is the one API client of the run: it fills KV, calls apono/sync and (as a
// clone with an AppRole token) makes the sequential walk. Enough idle connections for the
// writers, and no 60 s timeout.
func benchClient(srv *testvault.Server) (*api.Client, error) {
	return srv.RootClient(30*time.Minute, *writers*2)
}

// secretPath is where secret i lives: team/app/env/secret, 100 secrets per app.
func secretPath(i int) string {
	envs := [...]string{"dev", "stage", "prod"}
	return fmt.Sprintf("team%02d/app%04d/%s/s%06d", (i/100)%20, i/100, envs[i%3], i)
}

// fill writes secrets [from, to) with *writers concurrent writers.
func fill(ctx context.Context, c *api.Client, from, to int) error {
	next := atomic.Int64{}
	next.Store(int64(from))
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < *writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				data := map[string]interface{}{"data": map[string]interface{}{"password": fmt.Sprintf("p%06d", i)}}
				if _, err := c.Logical().WriteWithContext(ctx, kvMount+"/data/"+secretPath(i), data); err != nil {
					once.Do(func() { firstErr = err })
					next.Store(int64(to))
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

func measurePlugin(ctx context.Context, c *api.Client, pid, vaultPID int, r *row) error {
	r.pluginRSSBefore = procstat.StatusKB(pid, "VmRSS")
	pluginCPU, vaultCPU := procstat.CPUTime(pid), procstat.CPUTime(vaultPID)
	defer func() {
		r.pluginCPU, r.vaultCPU = procstat.CPUTime(pid)-pluginCPU, procstat.CPUTime(vaultPID)-vaultCPU
	}()
	if err := procstat.ResetPeak(pid); err != nil {
		return fmt.Errorf("resetting the plugin's peak RSS: %w", err)
	}
	// One attempt: the api client retries a 5xx, which would time a sync several times.
	once, err := c.Clone()
	if err != nil {
		return err
	}
	once.SetToken(c.Token())
	once.SetMaxRetries(0)
	began := time.Now()
	data := map[string]interface{}{}
	if *maxRequest > 0 {
		// apono/sync stops at 80s by default, under Vault's default request limit.
		data["timeout"] = int(min(*maxRequest, 30*time.Minute).Seconds())
	}
	s, err := once.Logical().WriteWithContext(ctx, "apono/sync", data)
	r.pluginTime = time.Since(began)
	r.pluginRSSPeak = procstat.StatusKB(pid, "VmHWM")
	if err != nil {
		return err
	}
	if s == nil || s.Data == nil {
		return fmt.Errorf("apono/sync returned no data")
	}
	num := func(k string) int64 {
		n, _ := strconv.ParseInt(fmt.Sprint(s.Data[k]), 10, 64)
		return n
	}
	r.entries = int(num("total"))
	r.pluginLists, r.pluginReads = num("list_calls"), num("read_calls")
	return nil
}

// measureSequential walks kv one call at a time, as a script would: LIST each folder,
// and (withReads) read each secret's metadata, keeping the names and custom_metadata as
// the plugin keeps its entries.
func measureSequential(ctx context.Context, c *api.Client, r *row, withReads bool) error {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	self := os.Getpid()
	rssBefore := procstat.StatusKB(self, "VmRSS")
	_ = procstat.ResetPeak(self)

	began := time.Now()
	type entry struct {
		name string
		meta map[string]interface{}
	}
	var found []entry
	var lists, reads int64
	stack := []string{""}
	for len(stack) > 0 {
		dir := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		s, err := c.Logical().ListWithContext(ctx, kvMount+"/metadata/"+dir)
		lists++
		if err != nil {
			return err
		}
		if s == nil {
			continue
		}
		keys, _ := s.Data["keys"].([]interface{})
		for _, k := range keys {
			key, _ := k.(string)
			if strings.HasSuffix(key, "/") {
				found = append(found, entry{name: kvMount + "/" + dir + key + "*"})
				stack = append(stack, dir+key)
				continue
			}
			e := entry{name: kvMount + "/" + dir + key}
			if withReads {
				m, err := c.Logical().ReadWithContext(ctx, kvMount+"/metadata/"+dir+key)
				reads++
				if err != nil {
					return err
				}
				if m != nil {
					e.meta, _ = m.Data["custom_metadata"].(map[string]interface{})
				}
			}
			found = append(found, e)
		}
	}
	elapsed := time.Since(began)
	runtime.ReadMemStats(&after)
	if withReads {
		r.seqTime, r.seqLists, r.seqReads, r.seqEntries = elapsed, lists, reads, int64(len(found))+1 // + kv/*
		r.seqAlloc = after.TotalAlloc - before.TotalAlloc
		r.seqRSSBefore, r.seqRSSPeak = rssBefore, procstat.StatusKB(self, "VmHWM")
	} else {
		r.seqListOnlyTime, r.seqListOnlyLists = elapsed, lists
	}
	runtime.KeepAlive(found)
	return nil
}

func mib(kb int64) string {
	if kb < 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f", float64(kb)/1024)
}

func dur(d time.Duration) string {
	if d >= 10*time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func report(rows []row, env string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# bench-sync %s\n\n%s\n\n", time.Now().UTC().Format(time.RFC3339), env)
	b.WriteString("| secrets | entries | fill (writes/s) | plugin sync | plugin LIST / read calls | plugin RSS MiB before → peak | CPU s plugin / vault | sequential walk (LIST + read) | seq LIST / read calls | seq Go alloc MiB | seq RSS MiB before → peak | CPU s vault | seq ÷ plugin | sequential LIST only |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	prev := 0
	for _, r := range rows {
		writes := r.secrets - prev
		prev = r.secrets
		plugin := dur(r.pluginTime)
		ratio := "n/a"
		if r.pluginErr != "" {
			plugin = "failed after " + plugin
		} else if r.pluginTime > 0 {
			ratio = fmt.Sprintf("%.1f×", float64(r.seqTime)/float64(r.pluginTime))
		}
		fmt.Fprintf(&b, "| %d | %d | %s (%.0f/s) | %s | %d / %d | %s → %s | %.1f / %.1f | %s | %d / %d | %.1f | %s → %s | %.1f | %s | %s (%d LISTs) |\n",
			r.secrets, r.entries, dur(r.fill), float64(writes)/r.fill.Seconds(),
			plugin, r.pluginLists, r.pluginReads, mib(r.pluginRSSBefore), mib(r.pluginRSSPeak), r.pluginCPU.Seconds(), r.vaultCPU.Seconds(),
			dur(r.seqTime), r.seqLists, r.seqReads, float64(r.seqAlloc)/(1<<20), mib(r.seqRSSBefore), mib(r.seqRSSPeak), r.seqVaultCPU.Seconds(),
			ratio, dur(r.seqListOnlyTime), r.seqListOnlyLists)
		if r.pluginErr != "" {
			fmt.Fprintf(&b, "\nplugin sync at %d secrets failed: %s\n\n", r.secrets, r.pluginErr)
		}
	}
	b.WriteString(`
- plugin sync: wall time of ` + "`vault write apono/sync`" + ` through the HTTP API (walk, metadata read per
  secret, owner derivation, snapshot stored in chunks), with timeout= the max request duration above
  (apono/sync stops at 80s by default); its LIST/read counts are from the response.
- plugin RSS: the plugin process (child of vault) from /proc: VmRSS before, VmHWM (peak) during the
  sync after resetting it (clear_refs 5). CPU s: user+system CPU seconds the plugin and the Vault
  server used during the sync (/proc/<pid>/stat); for the sequential walk, the Vault server's.
- sequential walk: the same API client (on an apono-plugin AppRole token, like the plugin), one call
  at a time: LIST every folder and read every secret's metadata, keeping names and custom_metadata.
  Go alloc is runtime TotalAlloc during the walk; RSS is this process's. "seq ÷ plugin" is sequential
  time over plugin time. The LIST-only walk shows what the per-secret metadata reads cost.
`)
	fmt.Print(b.String())
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(*outDir, "sync-"+time.Now().UTC().Format("20060102T150405Z")+".md")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return err
	}
	progress("table written to %s", path)
	return nil
}
