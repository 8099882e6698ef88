//go:build unix && !linux

package testvault

import "syscall"

// sysProcAttr puts Vault in its own process group, so Stop can kill it together with the
// plugin processes it starts. There is no Pdeathsig outside Linux.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
