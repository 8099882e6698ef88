package testvault

import (
	"fmt"
	"path/filepath"

	"github.com/apono-io/vault-plugin-apono/internal/procstat"
)

// PluginPIDs returns the process IDs of the plugin processes this server started (its
// children running the vault-plugin-apono binary), so a test can kill the plugin alone.
func (s *Server) PluginPIDs() ([]int, error) {
	parent, err := s.PID()
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, pid := range procstat.Children(parent) {
		if filepath.Base(procstat.Exe(pid)) == PluginName {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// PluginPID returns the process ID of the plugin process this server runs; if there are
// several (Vault starting a new one while an old one exits), the one with the largest RSS.
func (s *Server) PluginPID() (int, error) {
	pids, err := s.PluginPIDs()
	if err != nil {
		return 0, err
	}
	best, bestRSS := 0, int64(-1)
	for _, pid := range pids {
		if rss := procstat.StatusKB(pid, "VmRSS"); rss > bestRSS {
			best, bestRSS = pid, rss
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("testvault: no %s process is running", PluginName)
	}
	return best, nil
}
