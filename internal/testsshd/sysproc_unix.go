//go:build unix && !linux

package testsshd

import "syscall"

// sysProcAttr puts sshd in a process group of its own (cleanup kills the group if SIGTERM
// is not enough). There is no death signal outside Linux.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
