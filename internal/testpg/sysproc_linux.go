package testpg

import "syscall"

// sysProcAttr runs postgres as cred's account in a process group of its own (cleanup kills
// the group) and has the kernel send it SIGQUIT, PostgreSQL's immediate shutdown, if this
// process dies first. Go sets the death signal after the switch to cred, which clears it.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
}
