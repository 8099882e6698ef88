// Package testproc holds what the test helpers that start real servers (testpg, testsshd,
// testldap, testprom) share: a free loopback port, a random password, and stopping a
// server started in a process group of its own.
package testproc

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a loopback TCP port nobody listened on a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// RandomPassword is 36 random hex characters; a failure of the system's random source
// fails the test.
func RandomPassword(t testing.TB) string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Stop sends cmd SIGTERM and waits up to timeout for exited to close; past that it kills
// cmd's process group and reports false.
func Stop(cmd *exec.Cmd, exited <-chan struct{}, timeout time.Duration) bool {
	select {
	case <-exited:
		return true
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return true
	case <-time.After(timeout):
	}
	Kill(cmd, exited)
	return false
}

// Kill sends SIGKILL to cmd's process group (started with Setpgid) and waits for cmd.
func Kill(cmd *exec.Cmd, exited <-chan struct{}) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-exited
}
