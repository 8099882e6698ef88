package testldap

import "syscall"

// sysProcAttr puts slapd in a process group of its own (cleanup kills the group if
// SIGTERM is not enough) and has the kernel send it SIGTERM if this process dies first, so
// a test binary killed by its timeout leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
