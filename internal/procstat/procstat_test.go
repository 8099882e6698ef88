//go:build linux

package procstat

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// noSuchPID is above Linux's largest pid_max (2^22), so no process ever has it.
const noSuchPID = 1 << 30

func TestParseStatCommandNameWithSpacesAndParentheses(t *testing.T) {
	f := parseStat([]byte("4242 (a) b (c) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 1\n"))
	if len(f) < 13 || f[0] != "S" || f[1] != "17" || f[11] != "250" || f[12] != "30" {
		t.Fatalf("fields after the name: %q", f)
	}
	if f := parseStat([]byte("garbage")); f != nil {
		t.Fatalf("a line without ')' gave %q", f)
	}
}

func TestStatusKBOfThisProcess(t *testing.T) {
	pid := os.Getpid()
	rss := StatusKB(pid, "VmRSS")
	hwm := StatusKB(pid, "VmHWM")
	if rss <= 0 || hwm < rss {
		t.Fatalf("VmRSS %d kB, VmHWM %d kB: want 0 < RSS ≤ HWM", rss, hwm)
	}
	// A Go test binary is at least a few MB resident, and far below a terabyte.
	if rss < 1024 || rss > 1<<30 {
		t.Fatalf("VmRSS %d kB is not a plausible size in kB", rss)
	}
	if v := StatusKB(pid, "NoSuchField"); v != -1 {
		t.Errorf("a missing field gave %d, want -1", v)
	}
	if v := StatusKB(pid, "Name"); v != -1 { // present, but not a number of kB
		t.Errorf("the Name field gave %d, want -1", v)
	}
	if v := StatusKB(noSuchPID, "VmRSS"); v != -1 {
		t.Errorf("no such process gave %d, want -1", v)
	}
}

// TestResetPeak touches 64 MB, frees it, and checks that resetting the peak brings VmHWM
// back down near the current RSS.
func TestResetPeak(t *testing.T) {
	pid := os.Getpid()
	const size = 64 << 20
	buf := make([]byte, size)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	runtime.KeepAlive(buf)
	high := StatusKB(pid, "VmHWM")
	buf = nil
	runtime.GC()
	debug.FreeOSMemory()
	rss := StatusKB(pid, "VmRSS")
	if high-rss < size/1024/2 {
		t.Fatalf("freeing 64 MB moved RSS only from peak %d kB to %d kB", high, rss)
	}
	if err := ResetPeak(pid); err != nil {
		t.Fatal(err)
	}
	after := StatusKB(pid, "VmHWM")
	if after >= high-size/1024/2 {
		t.Fatalf("VmHWM %d kB after the reset, %d kB before: not reset", after, high)
	}
	if err := ResetPeak(noSuchPID); err == nil {
		t.Error("resetting the peak of no process succeeded")
	}
}

func TestCmdlineExeParentOfThisProcess(t *testing.T) {
	pid := os.Getpid()
	if got := Cmdline(pid); !reflect.DeepEqual(got, os.Args) {
		t.Errorf("Cmdline = %q, want os.Args %q", got, os.Args)
	}
	want, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if got := Exe(pid); got != want {
		t.Errorf("Exe = %q, want %q", got, want)
	}
	if got := ParentPID(pid); got != os.Getppid() {
		t.Errorf("ParentPID = %d, want %d", got, os.Getppid())
	}
	if Cmdline(noSuchPID) != nil || Exe(noSuchPID) != "" || ParentPID(noSuchPID) != -1 || CPUTime(noSuchPID) != 0 {
		t.Error("a process that does not exist gave values")
	}
}

// TestChildWithOddName runs a child whose command name holds spaces and parentheses, and
// finds it among this process's children with its parent, command line and executable.
func TestChildWithOddName(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("this test runs sleep(1): %v", err)
	}
	src, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	odd := filepath.Join(t.TempDir(), "x) 1 2 (y")
	if err := os.WriteFile(odd, src, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(odd, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	child := cmd.Process.Pid

	if !slices.Contains(Children(os.Getpid()), child) {
		t.Fatalf("Children(%d) = %v: no %d", os.Getpid(), Children(os.Getpid()), child)
	}
	if got := ParentPID(child); got != os.Getpid() {
		t.Errorf("ParentPID(child) = %d, want %d", got, os.Getpid())
	}
	if got := Cmdline(child); !reflect.DeepEqual(got, []string{odd, "30"}) {
		t.Errorf("Cmdline(child) = %q", got)
	}
	if got := Exe(child); got != odd {
		t.Errorf("Exe(child) = %q, want %q", got, odd)
	}
	if Children(child) != nil {
		t.Errorf("sleep has children: %v", Children(child))
	}
}

func burn(d time.Duration) int {
	n := 0
	for start := time.Now(); time.Since(start) < d; {
		for i := 0; i < 1000; i++ {
			n += i * i
		}
	}
	return n
}

// TestCPUTime computes on one goroutine until this process's CPU time has grown by 200 ms
// (on a shared, busy machine that can take several times as long in wall time): it must
// grow, by no more than the wall time allows, and the machine's must grow as much.
func TestCPUTime(t *testing.T) {
	pid := os.Getpid()
	before, machine := CPUTime(pid), MachineBusy()
	if machine <= 0 {
		t.Fatalf("MachineBusy = %s", machine)
	}
	const want = 200 * time.Millisecond
	start := time.Now()
	used := time.Duration(0)
	for used < want {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("30 s of computing grew this process's CPU time by only %s", used)
		}
		_ = burn(20 * time.Millisecond)
		used = CPUTime(pid) - before
	}
	wall := time.Since(start)
	// At most the wall time on every CPU, plus a tick of rounding on each end.
	if used > wall*time.Duration(runtime.NumCPU())+2*ClockTick {
		t.Fatalf("%s of wall time used %s of CPU", wall, used)
	}
	if grown := MachineBusy() - machine; grown < used-2*ClockTick {
		t.Fatalf("the machine's CPU time grew by %s, less than this process's %s", grown, used)
	}
}

func TestLoadAvg(t *testing.T) {
	f := strings.Fields(LoadAvg())
	if len(f) != 3 {
		t.Fatalf("LoadAvg = %q", LoadAvg())
	}
	for _, v := range f {
		if x, err := strconv.ParseFloat(v, 64); err != nil || x < 0 {
			t.Fatalf("LoadAvg = %q: %q is not a load", LoadAvg(), v)
		}
	}
}
