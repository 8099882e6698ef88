package testvault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
)

const (
	defaultStartTimeout = 60 * time.Second
	stopGrace           = 10 * time.Second
	cliTimeout          = 2 * time.Minute
	devRootToken        = "root"
)

// Options configures a server started by StartDev, StartWithPlugin, StartFile or
// StartRaftCluster. The zero value is ready to use.
type Options struct {
	// Dir holds the server's log, config, data and HOME. Empty: a new temporary
	// directory, which Stop leaves in place (its log is evidence); remove it when done.
	Dir string
	// PluginDir is Vault's plugin directory. Empty: Dir/plugins.
	PluginDir string
	// Env adds KEY=VALUE pairs to the server process's environment.
	Env []string
	// ExtraArgs are appended to `vault server ...` (e.g. "-dev-ha", "-dev-no-store-token").
	ExtraArgs []string
	// LogLevel is Vault's -log-level. Empty: "debug", so the plugin's own log lines,
	// which Vault relays at their level, reach LogPath too.
	LogLevel string
	// PluginEnv adds KEY=VALUE pairs to the plugin process's environment (its catalog
	// entry's env), for StartWithPlugin.
	PluginEnv []string
	// PluginVersion is the version StartWithPlugin builds and registers.
	// Empty: DefaultPluginVersion.
	PluginVersion string
	// StartTimeout bounds each wait for the server to come up. Empty: 60 s.
	StartTimeout time.Duration
	// Config is more server configuration (HCL). A dev server reads it from
	// Dir/extra.hcl (-config beside -dev); file and raft servers append it to vault.hcl.
	Config string
	// TLS, for file and raft servers, makes the listener serve TLS with these files
	// (NewTLS); URL is then https, and the CLI and Client trust the CA.
	TLS *TLSFiles
	// FileAudit gives a dev or file server a file audit device, at Server.AuditPath
	// (Dir/audit.log), from its start. Vault enables it with `vault audit enable file`
	// once it is up. OpenBao 2 refuses audit devices through the API ("cannot enable
	// audit device via API; use declarative, config-based audit device management"), so
	// there it is declared in the server's configuration, the way OpenBao asks for.
	FileAudit bool
}

// DevOptions is the name StartDev's options were first given; it is the same type.
type DevOptions = Options

// Server is one running Vault (or OpenBao: see ServerName) server process.
type Server struct {
	Addr      string      // host:port of the HTTP listener; VAULT_ADDR is "http://" + Addr
	RootToken string      // "root" for dev servers, the init root token otherwise
	UnsealKey string      // base64 unseal key (empty for dev servers, which auto-unseal)
	Dir       string      // see Options.Dir
	PluginDir string      // Vault's plugin directory
	LogPath   string      // combined stdout and stderr of every run of this server
	AuditPath string      // the file audit device's log (Options.FileAudit), or empty
	NodeID    string      // raft node id (raft servers only)
	Client    *api.Client // API client holding the root token

	bin     string
	tls     *TLSFiles // Options.TLS: the listener serves TLS
	args    []string
	env     []string
	timeout time.Duration

	mu   sync.Mutex
	proc *process
}

// URL returns the server's address as a VAULT_ADDR value.
func (s *Server) URL() string {
	if s.tls != nil {
		return "https://" + s.Addr
	}
	return "http://" + s.Addr
}

// StartDev starts `vault server -dev` on a free loopback port with root token "root" and
// waits until it is active.
func StartDev(opts Options) (*Server, error) {
	s, err := newServer(opts)
	if err != nil {
		return nil, err
	}
	s.RootToken = devRootToken
	// The port is free when picked but may be taken before Vault binds it: try again then.
	for attempt := 1; ; attempt++ {
		port, err := freePortPair()
		if err != nil {
			return nil, err
		}
		s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		s.args = []string{"server", "-dev",
			"-dev-root-token-id=" + devRootToken,
			"-dev-listen-address=" + s.Addr,
			"-dev-plugin-dir=" + s.PluginDir,
			"-log-level=" + logLevel(opts),
		}
		if extra := s.extraConfig(opts); extra != "" {
			path := filepath.Join(s.Dir, "extra.hcl")
			if err := os.WriteFile(path, []byte(extra), 0o600); err != nil {
				return nil, err
			}
			s.args = append(s.args, "-config="+path)
		}
		s.args = append(s.args, opts.ExtraArgs...)
		if err = s.newClient(); err != nil {
			return nil, err
		}
		err = s.start(func(code int) bool { return code == http.StatusOK })
		if err == nil {
			if err := s.enableFileAudit(); err != nil {
				_ = s.Stop()
				return nil, err
			}
			return s, nil
		}
		if attempt < 3 && strings.Contains(err.Error(), "address already in use") {
			continue
		}
		return nil, err
	}
}

func logLevel(opts Options) string {
	if opts.LogLevel == "" {
		return "debug"
	}
	return opts.LogLevel
}

func newServer(opts Options) (*Server, error) {
	bin, err := VaultBinary()
	if err != nil {
		return nil, err
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "testvault-"); err != nil {
			return nil, err
		}
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	pluginDir := opts.PluginDir
	if pluginDir == "" {
		pluginDir = filepath.Join(dir, "plugins")
	}
	if pluginDir, err = filepath.Abs(pluginDir); err != nil {
		return nil, err
	}
	// Vault refuses a plugin directory reached through a symlink (e.g. macOS /var).
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return nil, err
	}
	if pluginDir, err = filepath.EvalSymlinks(pluginDir); err != nil {
		return nil, err
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = defaultStartTimeout
	}
	// HOME points into Dir: a dev server stores its root token in ~/.vault-token and the
	// CLI reads it, so the user's own token must be neither overwritten nor used.
	env := append(cleanEnv(), "HOME="+dir)
	s := &Server{
		Dir:       dir,
		PluginDir: pluginDir,
		LogPath:   filepath.Join(dir, "vault.log"),
		bin:       bin,
		env:       append(env, opts.Env...),
		timeout:   timeout,
	}
	if opts.FileAudit {
		s.AuditPath = filepath.Join(dir, "audit.log")
	}
	return s, nil
}

// extraConfig is the configuration a server gets beyond its storage and listener:
// opts.Config and, on OpenBao, the file audit device (see Options.FileAudit).
func (s *Server) extraConfig(opts Options) string {
	extra := opts.Config
	if s.AuditPath != "" && IsOpenBao() {
		extra += fmt.Sprintf("\naudit \"file\" \"file\" {\n  options {\n    file_path = %q\n  }\n}\n", s.AuditPath)
	}
	return extra
}

// enableFileAudit enables the file audit device at AuditPath on Vault, where it is not
// in the configuration (see Options.FileAudit); the server must be up and unsealed.
func (s *Server) enableFileAudit() error {
	if s.AuditPath == "" || IsOpenBao() {
		return nil
	}
	_, _, err := s.CLI("", "audit", "enable", "file", "file_path="+s.AuditPath)
	return err
}

// cleanEnv is this process's environment without VAULT_* and BAO_* variables
// (VAULT_ADDR, BAO_TOKEN, VAULT_API_ADDR... would point the server or CLI elsewhere; the
// OpenBao CLI reads BAO_* first) and HOME.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VAULT_") || strings.HasPrefix(kv, "BAO_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (s *Server) newClient() error {
	cfg := api.DefaultConfig()
	cfg.Address = s.URL()
	if s.tls != nil {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: s.tls.CACert}); err != nil {
			return err
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return err
	}
	c.SetToken(s.RootToken)
	c.ClearNamespace() // NewClient reads VAULT_NAMESPACE from this process's environment
	s.Client = c
	return nil
}

// freePortPair returns a loopback port p such that p and p+1 are both free: Vault puts
// its cluster listener on the API port + 1 unless told otherwise.
func freePortPair() (int, error) {
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+1))
		l.Close()
		if err == nil {
			l2.Close()
			return port, nil
		}
	}
	return 0, errors.New("testvault: no two adjacent free loopback ports")
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l) // held open until all are chosen, so none repeats
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// process is one run of the vault server binary.
type process struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited and been reaped
	waitErr error         // valid after done is closed
}

func (s *Server) start(ready func(healthCode int) bool) error {
	if err := s.startProcess(); err != nil {
		return err
	}
	if err := s.waitHealth(ready); err != nil {
		_ = s.Stop()
		return err
	}
	return nil
}

func (s *Server) startProcess() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("testvault: server already running")
	}
	// Append: after a Restart the log still holds the earlier runs' lines.
	f, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "==== testvault: %s %s\n", s.bin, strings.Join(s.args, " "))
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.Dir
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("testvault: starting vault: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	s.proc = p
	return nil
}

func (s *Server) running() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// waitHealth polls sys/health until ready accepts its status code, the process exits,
// or the start timeout passes.
func (s *Server) waitHealth(ready func(code int) bool) error {
	p := s.running()
	if p == nil {
		return errors.New("testvault: server not running")
	}
	deadline := time.Now().Add(s.timeout)
	last := "no answer"
	for {
		code, err := s.HealthCode()
		if err == nil && ready(code) {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("sys/health answered %d", code)
		}
		select {
		case <-p.done:
			return fmt.Errorf("testvault: vault at %s exited while starting (%v)%s", s.Addr, p.waitErr, s.logTail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testvault: vault at %s not ready after %s (%s)%s", s.Addr, s.timeout, last, s.logTail())
		}
	}
}

// HealthCode returns the HTTP status of GET sys/health: 200 active, 429 unsealed standby,
// 501 not initialised, 503 sealed.
func (s *Server) HealthCode() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/v1/sys/health", nil)
	if err != nil {
		return 0, err
	}
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// logTail returns the end of the server's log, to make start failures self-explaining.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		return ""
	}
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return fmt.Sprintf("\n--- end of %s ---\n%s", s.LogPath, b)
}

// Stop ends the server: SIGTERM, then SIGKILL to its whole process group (Vault and the
// plugin processes it started) after 10 s. It waits for the exit and is idempotent. It
// returns an error if the server had already exited on its own (a crash) or had to be
// killed.
func (s *Server) Stop() error {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	pid := p.cmd.Process.Pid
	var err error
	select {
	case <-p.done:
		err = fmt.Errorf("testvault: vault at %s had exited before Stop (%v)%s", s.Addr, p.waitErr, s.logTail())
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-p.done
			err = fmt.Errorf("testvault: vault at %s ignored SIGTERM for %s and was killed", s.Addr, stopGrace)
		}
	}
	// Plugin processes left behind by an unclean exit are still in Vault's process group.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	return err
}

// Kill ends the server and its plugins with SIGKILL, as a crash would, and waits for it.
// Restart brings it back.
func (s *Server) Kill() error {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	return err
}

// Restart stops the server and starts it again with the same command line, ports and
// storage, unseals it with the kept key (servers with persistent storage) and waits until
// it is active or standby and serves requests. A dev server comes back empty: its storage
// is in memory.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	if err := s.startProcess(); err != nil {
		return err
	}
	if s.UnsealKey == "" {
		return s.waitHealth(func(code int) bool { return code == http.StatusOK })
	}
	if err := s.waitHealth(anyAnswer); err != nil {
		return err
	}
	if err := s.unseal(); err != nil {
		return err
	}
	if err := s.waitHealth(activeOrStandby); err != nil {
		return err
	}
	return s.waitServing()
}

func anyAnswer(int) bool { return true }

func activeOrStandby(code int) bool {
	return code == http.StatusOK || code == http.StatusTooManyRequests
}

// CLI runs the server's own CLI (`vault`, or `bao` for OpenBao: the server binary)
// against this server with VAULT_TOKEN=token (the root token when empty; BAO_ADDR and
// BAO_TOKEN are set too) and no stdin. The error includes stderr.
func (s *Server) CLI(token string, args ...string) (stdout, stderr string, err error) {
	return s.cli("", token, nil, args)
}

// CLIIn is CLI in namespace ns (OpenBao, Vault Enterprise); "" is the root namespace.
func (s *Server) CLIIn(ns, token string, args ...string) (stdout, stderr string, err error) {
	return s.cli(ns, token, nil, args)
}

// CLIWithStdin is CLI with stdin as the command's standard input (for `... -` arguments).
func (s *Server) CLIWithStdin(token, stdin string, args ...string) (stdout, stderr string, err error) {
	return s.cli("", token, strings.NewReader(stdin), args)
}

func (s *Server) cli(ns, token string, stdin *strings.Reader, args []string) (string, string, error) {
	if token == "" {
		token = s.RootToken
	}
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Dir = s.Dir
	cmd.Env = append(cleanEnv(), "HOME="+s.Dir, "VAULT_ADDR="+s.URL(), "BAO_ADDR="+s.URL())
	if s.tls != nil {
		cmd.Env = append(cmd.Env, "VAULT_CACERT="+s.tls.CACert, "BAO_CACERT="+s.tls.CACert)
	}
	if token != "" {
		cmd.Env = append(cmd.Env, "VAULT_TOKEN="+token, "BAO_TOKEN="+token)
	}
	if ns != "" {
		cmd.Env = append(cmd.Env, "VAULT_NAMESPACE="+ns, "BAO_NAMESPACE="+ns)
	}
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		where := ""
		if ns != "" {
			where = " (namespace " + ns + ")"
		}
		err = fmt.Errorf("%s %s%s: %w: %s", CLIName(), strings.Join(args, " "), where, err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), errOut.String(), err
}

// ListKeys LISTs path with c and returns the keys sorted; a missing or empty list (which
// Vault answers with 404) is an empty slice, not an error.
func ListKeys(c *api.Client, path string) ([]string, error) {
	s, err := c.Logical().List(path)
	if err != nil {
		return nil, err
	}
	var out []string
	if s != nil {
		keys, _ := s.Data["keys"].([]interface{})
		for _, k := range keys {
			out = append(out, fmt.Sprint(k))
		}
	}
	sort.Strings(out)
	return out, nil
}
