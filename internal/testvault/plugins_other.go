//go:build !linux

package testvault

import "errors"

// PluginPIDs is only implemented on Linux (it reads /proc).
func (s *Server) PluginPIDs() ([]int, error) {
	return nil, errors.New("testvault: PluginPIDs needs Linux's /proc")
}

// PluginPID is only implemented on Linux (it reads /proc).
func (s *Server) PluginPID() (int, error) {
	return 0, errors.New("testvault: PluginPID needs Linux's /proc")
}
