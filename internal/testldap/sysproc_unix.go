//go:build unix && !linux

package testldap

import "syscall"

// sysProcAttr puts slapd in a process group of its own (cleanup kills the group). There is
// no death signal outside Linux.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
