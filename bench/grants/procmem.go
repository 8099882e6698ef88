package main

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/procstat"
	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// procWatcher follows the Vault server and the plugin process (its child): their CPU time
// and the plugin's peak RSS.
// The kernel keeps the peak (VmHWM); writing 5 to clear_refs resets it to the current RSS,
// so each phase gets its own peak. A 100 ms RSS sampler backs it up if the reset is refused.
type procWatcher struct {
	srv      *testvault.Server
	vaultPID int

	mu          sync.Mutex
	pluginPID   int
	pids        map[int]bool // every plugin process seen: more than one means it restarted
	sampledPeak int64        // kB, since the last reset
	resetOK     bool
	done        chan struct{}
}

type memPeak struct {
	pluginKB int64
	vaultKB  int64
	exact    bool // from VmHWM after a reset; false: the sampled maximum
}

func watchProcesses(srv *testvault.Server) (*procWatcher, error) {
	vaultPID, err := srv.PID()
	if err != nil {
		return nil, err
	}
	w := &procWatcher{srv: srv, vaultPID: vaultPID, pids: map[int]bool{}, done: make(chan struct{})}
	if _, err := w.plugin(); err != nil {
		return nil, err
	}
	go w.sample()
	return w, nil
}

// plugin returns the pid of the plugin process, finding it again if it changed.
func (w *procWatcher) plugin() (int, error) {
	w.mu.Lock()
	pid := w.pluginPID
	w.mu.Unlock()
	if pid != 0 && procstat.StatusKB(pid, "VmRSS") > 0 {
		return pid, nil
	}
	pid, err := w.srv.PluginPID()
	if err != nil {
		return 0, fmt.Errorf("finding the plugin process under vault (pid %d): %w", w.vaultPID, err)
	}
	w.mu.Lock()
	w.pluginPID = pid
	w.pids[pid] = true
	w.mu.Unlock()
	return pid, nil
}

func (w *procWatcher) sample() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
		}
		pid, err := w.plugin()
		if err != nil {
			continue
		}
		rss := procstat.StatusKB(pid, "VmRSS")
		w.mu.Lock()
		w.sampledPeak = max(w.sampledPeak, rss)
		w.mu.Unlock()
	}
}

func (w *procWatcher) stop() { close(w.done) }

// current is the RSS now, for the idle figure.
func (w *procWatcher) current() memPeak {
	pid, _ := w.plugin()
	return memPeak{pluginKB: procstat.StatusKB(pid, "VmRSS"), vaultKB: procstat.StatusKB(w.vaultPID, "VmRSS"), exact: true}
}

// resetPeak starts a new phase: the kernel's peak and the sampled one start from now.
func (w *procWatcher) resetPeak() {
	pid, _ := w.plugin()
	ok := procstat.ResetPeak(pid) == nil
	ok = procstat.ResetPeak(w.vaultPID) == nil && ok
	w.mu.Lock()
	w.resetOK = ok
	w.sampledPeak = procstat.StatusKB(pid, "VmRSS")
	w.mu.Unlock()
}

// peak is the plugin's (and Vault's) peak RSS since the last resetPeak.
func (w *procWatcher) peak() memPeak {
	pid, _ := w.plugin()
	w.mu.Lock()
	defer w.mu.Unlock()
	p := memPeak{pluginKB: w.sampledPeak, vaultKB: procstat.StatusKB(w.vaultPID, "VmHWM")}
	if w.resetOK {
		p.pluginKB, p.exact = max(p.pluginKB, procstat.StatusKB(pid, "VmHWM")), true
	}
	return p
}

// restarts is how many times a new plugin process appeared after the first.
func (w *procWatcher) restarts() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pids) - 1
}

// cpuTimes is user+system CPU time used so far by each process.
type cpuTimes struct {
	vault, plugin, client time.Duration
}

func (c cpuTimes) sub(o cpuTimes) cpuTimes {
	return cpuTimes{vault: c.vault - o.vault, plugin: c.plugin - o.plugin, client: c.client - o.client}
}

func (c cpuTimes) add(o cpuTimes) cpuTimes {
	return cpuTimes{vault: c.vault + o.vault, plugin: c.plugin + o.plugin, client: c.client + o.client}
}

func (c cpuTimes) total() time.Duration { return c.vault + c.plugin + c.client }

// cpu reads the CPU time of Vault, the plugin and this process (the client).
func (w *procWatcher) cpu() cpuTimes {
	pid, _ := w.plugin()
	return cpuTimes{vault: procstat.CPUTime(w.vaultPID), plugin: procstat.CPUTime(pid), client: procstat.CPUTime(os.Getpid())}
}

// foreignMeter measures how much CPU processes other than Vault, the plugin and this
// program used during a phase: other people's builds and tests make figures meaningless.
type foreignMeter struct {
	w    *procWatcher
	at   time.Time
	busy time.Duration
	ours cpuTimes
}

func (w *procWatcher) startForeign() foreignMeter {
	return foreignMeter{w: w, at: time.Now(), busy: procstat.MachineBusy(), ours: w.cpu()}
}

// cores is the average number of CPUs other processes kept busy since the start.
func (m foreignMeter) cores() float64 {
	wall := time.Since(m.at)
	if wall <= 0 {
		return 0
	}
	other := (procstat.MachineBusy() - m.busy) - m.w.cpu().sub(m.ours).total()
	return max(0, other.Seconds()/wall.Seconds())
}

// scanLog counts the server log's lines about irrevocable leases and failed revocations.
func scanLog(path string) (irrevocable, revokeFailures int) {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1, -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		l := strings.ToLower(line)
		if strings.Contains(l, "irrevocable") {
			irrevocable++
		}
		if strings.Contains(l, "failed to revoke lease") {
			revokeFailures++
		}
	}
	return irrevocable, revokeFailures
}
