package testvault

import "errors"

// PID returns the process ID of the running vault server (the parent of its plugin
// processes).
func (s *Server) PID() (int, error) {
	p := s.running()
	if p == nil {
		return 0, errors.New("testvault: server not running")
	}
	return p.cmd.Process.Pid, nil
}
