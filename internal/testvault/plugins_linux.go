package testvault

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PluginPIDs returns the process IDs of the plugin processes this server started (its
// children running the vault-plugin-apono binary), so a test can kill the plugin alone.
func (s *Server) PluginPIDs() ([]int, error) {
	p := s.running()
	if p == nil {
		return nil, errors.New("testvault: server not running")
	}
	parent := p.cmd.Process.Pid
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after its ')'.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(parent) {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || filepath.Base(exe) != PluginName {
			continue
		}
		pids = append(pids, pid)
	}
	return pids, nil
}
