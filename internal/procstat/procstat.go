// Package procstat reads what the benchmarks and the test harness need to know about a
// process from Linux's /proc: its memory (VmRSS, VmHWM), CPU time, parent, command line
// and children, and the machine's CPU time and load. Elsewhere every reader reports the
// value as unavailable.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ClockTick is USER_HZ, the unit of the times in /proc/<pid>/stat and /proc/stat: 100 per
// second on every Linux architecture Go supports, whatever the kernel's own HZ.
const ClockTick = 10 * time.Millisecond

func path(pid int, name string) string { return fmt.Sprintf("/proc/%d/%s", pid, name) }

// StatusKB returns a "Key: N kB" field of /proc/<pid>/status (VmRSS is the resident set
// now, VmHWM its peak), or -1 when the process or the field is not there.
func StatusKB(pid int, key string) int64 {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile(path(pid, "status"))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		if f := strings.Fields(rest); len(f) > 0 {
			if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				return n
			}
		}
		return -1
	}
	return -1
}

// ResetPeak makes the VmHWM of pid start again from its current RSS (it writes 5 to
// /proc/<pid>/clear_refs), so each measured phase gets a peak of its own.
func ResetPeak(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("procstat: no process %d", pid)
	}
	return os.WriteFile(path(pid, "clear_refs"), []byte("5"), 0)
}

// Cmdline returns the arguments pid was started with (argv[0] first), or nil.
func Cmdline(pid int) []string {
	b, err := os.ReadFile(path(pid, "cmdline"))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// Exe returns the path of the executable pid runs, or "" when it cannot be read.
func Exe(pid int) string {
	exe, err := os.Readlink(path(pid, "exe"))
	if err != nil {
		return ""
	}
	return exe
}

// ParentPID returns the parent of pid, or -1.
func ParentPID(pid int) int {
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

// CPUTime returns the user plus system CPU time pid (all its threads) has used so far, or
// 0 when it cannot be read.
func CPUTime(pid int) time.Duration {
	f := statFields(pid)
	// After the command name: state(0) ppid(1) ... utime(11) stime(12), in clock ticks.
	if len(f) < 13 {
		return 0
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(u+s) * ClockTick
}

func statFields(pid int) []string {
	if pid <= 0 {
		return nil
	}
	b, err := os.ReadFile(path(pid, "stat"))
	if err != nil {
		return nil
	}
	return parseStat(b)
}

// parseStat returns the fields of a /proc/<pid>/stat line after the parenthesised command
// name, which may itself hold spaces and parentheses: "pid (comm) state ppid ...".
func parseStat(b []byte) []string {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// Children returns the live processes whose parent is ppid, in /proc's order.
func Children(ppid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ParentPID(pid) == ppid { // -1 for one that exited meanwhile
			out = append(out, pid)
		}
	}
	return out
}

// MachineBusy returns the CPU time every process on the machine has used since boot
// (/proc/stat: user, nice, system, irq, softirq, steal; guest time is inside user), or 0.
func MachineBusy() time.Duration {
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
	return time.Duration(ticks) * ClockTick
}

// LoadAvg returns the 1, 5 and 15 minute load averages as `uptime` prints them, or
// "unknown".
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
