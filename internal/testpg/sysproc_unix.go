//go:build unix && !linux

package testpg

import "syscall"

// sysProcAttr runs postgres as cred's account in a process group of its own (cleanup kills
// the group). There is no death signal outside Linux.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}
