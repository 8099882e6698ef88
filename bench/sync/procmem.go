package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Memory is read from /proc (Linux): VmRSS is the resident set now, VmHWM its peak, and
// writing 5 to /proc/<pid>/clear_refs resets that peak to the current RSS, so each
// measured phase gets a peak of its own.

// statusKB returns a "Vm..." field of /proc/<pid>/status in kB, or -1.
func statusKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return n
				}
			}
		}
	}
	return -1
}

// resetPeak makes VmHWM of pid start again from its current RSS.
func resetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

func cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

func parentPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return -1
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

func allPIDs() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cpuSeconds is the user plus system CPU time pid has used, from /proc/<pid>/stat.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	// After the command: state(0) ppid(1) ... utime(11) stime(12), in clock ticks; Linux
	// reports them at USER_HZ, 100 per second, whatever the kernel's own HZ.
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}

// findPluginPID finds the Vault server listening on addr and, among its children, the
// plugin process; it returns both pids.
func findPluginPID(addr, pluginName string) (pluginPID, vaultPID int, err error) {
	vaultPID = -1
	for _, pid := range allPIDs() {
		for _, arg := range cmdline(pid) {
			if arg == "-dev-listen-address="+addr {
				vaultPID = pid
			}
		}
	}
	if vaultPID < 0 {
		return 0, 0, fmt.Errorf("no vault server process with -dev-listen-address=%s", addr)
	}
	for _, pid := range allPIDs() {
		if parentPID(pid) != vaultPID {
			continue
		}
		if args := cmdline(pid); len(args) > 0 && filepath.Base(args[0]) == pluginName {
			return pid, vaultPID, nil
		}
	}
	return 0, 0, fmt.Errorf("no %s process under vault (pid %d)", pluginName, vaultPID)
}
