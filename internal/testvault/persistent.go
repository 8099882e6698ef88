package testvault

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// StartFile starts `vault server -config=...` with file storage in Dir/data, initialises
// it with one unseal key, unseals it and waits until it is active. Its data survives
// Restart.
func StartFile(opts Options) (*Server, error) {
	s, err := newServer(opts)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	storage := fmt.Sprintf("storage \"file\" {\n  path = %q\n}\n", filepath.Join(s.Dir, "data"))
	if err := s.configure(opts, ports[0], ports[1], storage); err != nil {
		return nil, err
	}
	if err := s.start(anyAnswer); err != nil {
		return nil, err
	}
	if err := s.initAndUnseal(); err != nil {
		_ = s.Stop()
		return nil, err
	}
	if err := s.waitHealth(func(code int) bool { return code == http.StatusOK }); err != nil {
		_ = s.Stop()
		return nil, err
	}
	if err := s.enableFileAudit(); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// configure writes Dir/vault.hcl (storage plus the common listener, addresses and plugin
// directory) and sets the server's command line to use it.
func (s *Server) configure(opts Options, apiPort, clusterPort int, storage string) error {
	s.Addr = fmt.Sprintf("127.0.0.1:%d", apiPort)
	clusterAddr := fmt.Sprintf("127.0.0.1:%d", clusterPort)
	// The cluster address is set explicitly: Vault's default, API port + 1, may be taken.
	s.tls = opts.TLS
	hcl := storage + fmt.Sprintf(`listener "tcp" {
  address         = %q
  cluster_address = %q
%s}
api_addr         = %q
cluster_addr     = %q
plugin_directory = %q
disable_mlock    = true
`, s.Addr, clusterAddr, s.listenerTLS(), s.URL(), "https://"+clusterAddr, s.PluginDir) + s.extraConfig(opts)
	path := filepath.Join(s.Dir, "vault.hcl")
	if err := os.WriteFile(path, []byte(hcl), 0o600); err != nil {
		return err
	}
	s.args = append([]string{"server", "-config=" + path, "-log-level=" + logLevel(opts)}, opts.ExtraArgs...)
	return s.newClient()
}

// initAndUnseal runs `vault operator init` with a single key share, keeps the root token
// and unseal key, and unseals the server.
func (s *Server) initAndUnseal() error {
	out, _, err := s.CLI("", "operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json")
	if err != nil {
		return err
	}
	var res struct {
		Keys      []string `json:"unseal_keys_b64"`
		RootToken string   `json:"root_token"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Keys) != 1 || res.RootToken == "" {
		return fmt.Errorf("testvault: unexpected `vault operator init` output (%v)", err)
	}
	s.UnsealKey, s.RootToken = res.Keys[0], res.RootToken
	s.Client.SetToken(s.RootToken)
	return s.unseal()
}

// unseal submits the unseal key until the server reports itself unsealed. A raft node
// that is still joining rejects or holds the key until the leader has answered its join
// request, hence the retries.
func (s *Server) unseal() error {
	p := s.running()
	if p == nil {
		return errors.New("testvault: server not running")
	}
	deadline := time.Now().Add(s.timeout)
	var last error
	for {
		st, err := s.Client.Sys().SealStatus()
		if err == nil && !st.Sealed {
			return nil
		}
		if err == nil && st.Progress == 0 {
			_, err = s.Client.Sys().Unseal(s.UnsealKey)
		}
		if err != nil {
			last = err
		}
		select {
		case <-p.done:
			return fmt.Errorf("testvault: vault at %s exited while unsealing (%v)%s", s.Addr, p.waitErr, s.logTail())
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testvault: vault at %s still sealed after %s (last error: %v)%s", s.Addr, s.timeout, last, s.logTail())
		}
	}
}

// StartRaftCluster starts n servers with raft storage that share one plugin directory,
// initialises and unseals node 1, lets the others join it (retry_join) and unseals them
// with the same key, and waits until the raft configuration lists n voters. Servers are
// returned in node order; node 1 is the first active node. On error nothing is left
// running.
func StartRaftCluster(n int, opts Options) (servers []*Server, err error) {
	if n < 1 {
		return nil, errors.New("testvault: a cluster needs at least one node")
	}
	if opts.FileAudit {
		// Vault's audit table is the cluster's: every node would write one file path.
		return nil, errors.New("testvault: FileAudit is for dev and file servers")
	}
	base := opts.Dir
	if base == "" {
		if base, err = os.MkdirTemp("", "testvault-raft-"); err != nil {
			return nil, err
		}
	}
	if opts.PluginDir == "" {
		opts.PluginDir = filepath.Join(base, "plugins")
	}
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			for _, s := range servers {
				_ = s.Stop()
			}
			servers = nil
		}
	}()
	leader := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	joinTLS := ""
	if opts.TLS != nil {
		leader = fmt.Sprintf("https://127.0.0.1:%d", ports[0])
		joinTLS = fmt.Sprintf("\n    leader_ca_cert_file = %q", opts.TLS.CACert)
	}
	for i := 0; i < n; i++ {
		nodeOpts := opts
		nodeOpts.Dir = filepath.Join(base, fmt.Sprintf("node%d", i+1))
		if err := os.MkdirAll(nodeOpts.Dir, 0o755); err != nil {
			return servers, err
		}
		s, err := newServer(nodeOpts)
		if err != nil {
			return servers, err
		}
		s.NodeID = fmt.Sprintf("node%d", i+1)
		raftDir := filepath.Join(s.Dir, "raft")
		if err := os.MkdirAll(raftDir, 0o700); err != nil {
			return servers, err
		}
		storage := fmt.Sprintf(`storage "raft" {
  path    = %q
  node_id = %q
  # Vault's default multiplier, 5, makes a fresh single-node cluster wait ~5 s for its
  # first election; 1 is the timing HashiCorp recommends for production anyway.
  performance_multiplier = 1
  # Autopilot promotes joined nodes to voters only on a reconcile tick (default 10 s).
  autopilot_reconcile_interval = "3s"
  retry_join {
    leader_api_addr = %q%s
  }
}
`, raftDir, s.NodeID, leader, joinTLS)
		if err := s.configure(nodeOpts, ports[2*i], ports[2*i+1], storage); err != nil {
			return servers, err
		}
		// Start every process before initialising, so their start-up times overlap.
		if err := s.startProcess(); err != nil {
			return servers, err
		}
		servers = append(servers, s)
	}
	for _, s := range servers {
		if err := s.waitHealth(anyAnswer); err != nil {
			return servers, err
		}
	}
	first := servers[0]
	if err := first.initAndUnseal(); err != nil {
		return servers, err
	}
	if err := first.waitHealth(func(code int) bool { return code == http.StatusOK }); err != nil {
		return servers, err
	}
	// A joining node must stay healthy for server_stabilization_time (default 10 s)
	// before autopilot makes it a voter; the cluster's behaviour is otherwise unchanged.
	if _, err := first.Client.Logical().Write("sys/storage/raft/autopilot/configuration",
		map[string]interface{}{"server_stabilization_time": "2s"}); err != nil {
		return servers, fmt.Errorf("testvault: configuring autopilot: %w", err)
	}
	// Followers join one by one through their own 2 s retry loops: unseal them together.
	errs := make(chan error, n-1)
	for _, s := range servers[1:] {
		s.UnsealKey, s.RootToken = first.UnsealKey, first.RootToken
		s.Client.SetToken(s.RootToken)
		go func() {
			err := s.unseal()
			if err == nil {
				err = s.waitHealth(activeOrStandby)
			}
			errs <- err
		}()
	}
	for range servers[1:] {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if err != nil {
		return servers, err
	}
	if err := waitVoters(first, n); err != nil {
		return servers, err
	}
	for _, s := range servers {
		if err := s.waitServing(); err != nil {
			return servers, err
		}
	}
	return servers, nil
}

// waitServing waits until the server answers a token lookup with the root token. A
// standby reports itself ready (429) before it can forward requests to the active node,
// which it learns of only on its next leader check.
func (s *Server) waitServing() error {
	deadline := time.Now().Add(s.timeout)
	for {
		_, err := s.Client.Auth().Token().LookupSelf()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testvault: vault at %s cannot serve requests after %s: %w%s", s.Addr, s.timeout, err, s.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitVoters waits until the raft configuration, read through s, lists n voters. Vault's
// autopilot adds joining nodes as non-voters and promotes them once they have been
// healthy for its server_stabilization_time (10 s by default).
func waitVoters(s *Server, n int) error {
	deadline := time.Now().Add(s.timeout + 30*time.Second)
	last := "no answer"
	for {
		sec, err := s.Client.Logical().Read("sys/storage/raft/configuration")
		if err != nil {
			last = err.Error()
		} else if sec != nil {
			var cfg struct {
				Config struct {
					Servers []struct {
						NodeID string `json:"node_id"`
						Voter  bool   `json:"voter"`
					} `json:"servers"`
				} `json:"config"`
			}
			b, _ := json.Marshal(sec.Data)
			if err := json.Unmarshal(b, &cfg); err != nil {
				return fmt.Errorf("testvault: decoding the raft configuration: %w", err)
			}
			var voters []string
			for _, srv := range cfg.Config.Servers {
				if srv.Voter {
					voters = append(voters, srv.NodeID)
				}
			}
			if len(voters) == n {
				return nil
			}
			last = fmt.Sprintf("%d servers, voters %v", len(cfg.Config.Servers), voters)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testvault: raft cluster has no %d voters (%s)", n, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// ActiveNode returns the server whose sys/health answers 200 (active); standbys answer
// 429. Stopped servers are skipped. It errors if none is active right now.
func ActiveNode(servers []*Server) (*Server, error) {
	var codes []string
	for _, s := range servers {
		if s.running() == nil {
			codes = append(codes, s.Addr+": stopped")
			continue
		}
		code, err := s.HealthCode()
		if err == nil && code == http.StatusOK {
			return s, nil
		}
		if err != nil {
			codes = append(codes, fmt.Sprintf("%s: %v", s.Addr, err))
		} else {
			codes = append(codes, fmt.Sprintf("%s: %d", s.Addr, code))
		}
	}
	return nil, fmt.Errorf("testvault: no active node (%s)", strings.Join(codes, ", "))
}

// WaitActiveNode polls ActiveNode until one answers or timeout passes, e.g. while the
// standbys elect a new leader after the active node was stopped.
func WaitActiveNode(servers []*Server, timeout time.Duration) (*Server, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := ActiveNode(servers)
		if err == nil || time.Now().After(deadline) {
			return s, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}
