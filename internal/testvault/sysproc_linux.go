package testvault

import "syscall"

// sysProcAttr puts Vault in its own process group, so Stop can kill it together with the
// plugin processes it starts, and has the kernel send it SIGTERM if this process dies
// first (a test binary killed by `go test -timeout`), so no server outlives the test.
// Pdeathsig fires when the forking OS thread exits; the Go runtime only retires threads
// of goroutines that exit while locked to them, which this package never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
