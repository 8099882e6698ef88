package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// procWatcher follows the Vault server and the plugin process (its child): their CPU time
// and the plugin's peak RSS.
// The kernel keeps the peak (VmHWM); writing 5 to clear_refs resets it to the current RSS,
// so each phase gets its own peak. A 100 ms RSS sampler backs it up if the reset is refused.
type procWatcher struct {
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
	vaultPID, err := findVaultPID(srv.Addr)
	if err != nil {
		return nil, err
	}
	w := &procWatcher{vaultPID: vaultPID, pids: map[int]bool{}, done: make(chan struct{})}
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
	if pid != 0 && statusKB(pid, "VmRSS") > 0 {
		return pid, nil
	}
	pid, err := findChild(w.vaultPID, func(exe string, _ []string) bool {
		return filepath.Base(exe) == testvault.PluginName
	})
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
		rss := statusKB(pid, "VmRSS")
		w.mu.Lock()
		w.sampledPeak = max(w.sampledPeak, rss)
		w.mu.Unlock()
	}
}

func (w *procWatcher) stop() { close(w.done) }

// current is the RSS now, for the idle figure.
func (w *procWatcher) current() memPeak {
	pid, _ := w.plugin()
	return memPeak{pluginKB: statusKB(pid, "VmRSS"), vaultKB: statusKB(w.vaultPID, "VmRSS"), exact: true}
}

// resetPeak starts a new phase: the kernel's peak and the sampled one start from now.
func (w *procWatcher) resetPeak() {
	pid, _ := w.plugin()
	ok := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
	ok = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", w.vaultPID), []byte("5"), 0) == nil && ok
	w.mu.Lock()
	w.resetOK = ok
	w.sampledPeak = statusKB(pid, "VmRSS")
	w.mu.Unlock()
}

// peak is the plugin's (and Vault's) peak RSS since the last resetPeak.
func (w *procWatcher) peak() memPeak {
	pid, _ := w.plugin()
	w.mu.Lock()
	defer w.mu.Unlock()
	p := memPeak{pluginKB: w.sampledPeak, vaultKB: statusKB(w.vaultPID, "VmHWM")}
	if w.resetOK {
		p.pluginKB, p.exact = max(p.pluginKB, statusKB(pid, "VmHWM")), true
	}
	return p
}

// restarts is how many times a new plugin process appeared after the first.
func (w *procWatcher) restarts() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pids) - 1
}

// findVaultPID finds the `vault server` process testvault started (a child of this
// process) listening on addr.
func findVaultPID(addr string) (int, error) {
	return findChild(os.Getpid(), func(_ string, args []string) bool {
		return len(args) > 1 && args[1] == "server" && containsArg(args, "-dev-listen-address="+addr)
	})
}

func containsArg(args []string, want string) bool {
	for _, a := range args {
		if a == want {
			return true
		}
	}
	return false
}

// findChild walks /proc for a live process whose parent is ppid and that match accepts;
// with several, it takes the one with the largest RSS.
func findChild(ppid int, match func(exe string, args []string) bool) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	best, bestRSS := 0, int64(-1)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || parentPID(pid) != ppid {
			continue
		}
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if !match(exe, args) {
			continue
		}
		if rss := statusKB(pid, "VmRSS"); rss > bestRSS {
			best, bestRSS = pid, rss
		}
	}
	if best == 0 {
		return 0, errors.New("no such process")
	}
	return best, nil
}

// parentPID reads the ppid from /proc/<pid>/stat (the field after the parenthesised name).
func parentPID(pid int) int {
	f := statFields(pid)
	if len(f) < 2 {
		return -1
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return ppid
}

// statusKB reads a "Key: N kB" line of /proc/<pid>/status; 0 when unavailable.
func statusKB(pid int, key string) int64 {
	if pid <= 0 {
		return 0
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, key+":") {
			continue
		}
		fields := strings.Fields(strings.TrimPrefix(line, key+":"))
		if len(fields) == 0 {
			return 0
		}
		v, _ := strconv.ParseInt(fields[0], 10, 64)
		return v
	}
	return 0
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
	return cpuTimes{vault: cpuTime(w.vaultPID), plugin: cpuTime(pid), client: cpuTime(os.Getpid())}
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux
// architecture Go supports.
const clockTick = 10 * time.Millisecond

// cpuTime is utime+stime of a process (its threads included) from /proc/<pid>/stat.
func cpuTime(pid int) time.Duration {
	f := statFields(pid)
	// After the name: state(0) ppid(1) ... utime(11) stime(12).
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * clockTick
}

// statFields are the fields of /proc/<pid>/stat after the parenthesised command name.
func statFields(pid int) []string {
	if pid <= 0 {
		return nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// machineBusy is the CPU time all processes on the machine have used since boot
// (/proc/stat: user, nice, system, irq, softirq, steal; guest time is inside user).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * clockTick
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
	return foreignMeter{w: w, at: time.Now(), busy: machineBusy(), ours: w.cpu()}
}

// cores is the average number of CPUs other processes kept busy since the start.
func (m foreignMeter) cores() float64 {
	wall := time.Since(m.at)
	if wall <= 0 {
		return 0
	}
	other := (machineBusy() - m.busy) - m.w.cpu().sub(m.ours).total()
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
