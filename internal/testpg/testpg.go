// Package testpg starts a throwaway PostgreSQL server, from Debian's postgresql package, for
// one test: on 127.0.0.1 and a free port, with a superuser that logs in by password
// (scram-sha-256) as Vault's database secrets engine does, stopped when the test ends.
package testpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/apono-io/vault-plugin-apono/internal/testproc"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// adminUser is the superuser initdb creates: Vault's connection user.
	adminUser     = "vaultadmin"
	startTimeout  = 30 * time.Second
	stopTimeout   = 15 * time.Second
	psqlTimeout   = 30 * time.Second
	startAttempts = 5
)

// Server is one running PostgreSQL server and what a test needs to reach it.
type Server struct {
	Host          string // always 127.0.0.1
	Port          int
	AdminUser     string // a superuser that logs in over TCP with AdminPassword
	AdminPassword string // random, per server
	Dir           string // the server's temporary directory: data/, its socket, its log
	LogPath       string // the server's stderr: startup, connections, errors

	bins    binaries
	cred    *syscall.Credential // the unprivileged account the server runs as, nil: this process's
	dataDir string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
}

// Start initialises a new cluster in a temporary directory and starts PostgreSQL on it; the
// test's cleanup stops it (pg_ctl stop -m immediate, then the process group is killed) and
// removes the directory. PostgreSQL refuses to run as root, so as root the server runs as
// the postgres account (Debian's package makes it; Start makes it if it is missing). It
// fails the test, never skips it, when PostgreSQL is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	begin := time.Now()
	bins, err := findBinaries()
	if err != nil {
		t.Fatal(err)
	}
	cred, err := serverCredential()
	if err != nil {
		t.Fatalf("testpg: %v", err)
	}
	dir, err := os.MkdirTemp(tempRoot(cred), "testpg-")
	if err != nil {
		t.Fatalf("testpg: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := chown(dir, cred); err != nil {
		t.Fatalf("testpg: %v", err)
	}
	s := &Server{
		Host:          "127.0.0.1",
		AdminUser:     adminUser,
		AdminPassword: testproc.RandomPassword(t),
		Dir:           dir,
		LogPath:       filepath.Join(dir, "postgres.log"),
		bins:          bins,
		cred:          cred,
		dataDir:       filepath.Join(dir, "data"),
	}
	if err := s.initdb(); err != nil {
		t.Fatalf("testpg: %v", err)
	}
	for attempt := 1; ; attempt++ {
		err := s.start()
		if err == nil {
			break
		}
		// Another process may take the free port between our look and the server's bind.
		if errors.Is(err, errPortTaken) && attempt < startAttempts {
			continue
		}
		t.Fatalf("testpg: %v\n%s", err, s.Log())
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("testpg: %v", err)
		}
		if t.Failed() {
			t.Logf("testpg: the server's log (%s):\n%s", s.LogPath, lastLines(s.Log(), 40))
		}
	})
	t.Logf("testpg: PostgreSQL (%s) ready on %s:%d in %s", s.bins.dir, s.Host, s.Port, time.Since(begin).Round(time.Millisecond))
	return s
}

// ConnectionURL is the connection_url Vault's postgresql-database-plugin wants: Vault fills
// in {{username}} and {{password}} from the config's username and password.
func (s *Server) ConnectionURL() string {
	return fmt.Sprintf("postgresql://{{username}}:{{password}}@%s:%d/postgres?sslmode=disable", s.Host, s.Port)
}

// Psql runs sql with the real psql client, logged in over TCP as user with password (as an
// application would), and returns its unaligned, tuples-only output without the final
// newline. The error carries psql's stderr, e.g. "password authentication failed".
func (s *Server) Psql(t testing.TB, user, password, sql string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), psqlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bins.psql, "-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1",
		"-h", s.Host, "-p", strconv.Itoa(s.Port), "-U", user, "-d", "postgres", "-c", sql)
	cmd.Env = append(environWithoutPG(), "PGPASSWORD="+password, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=10")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("psql as %s: %v: %s", user, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSuffix(stdout.String(), "\n"), nil
}

// AdminSQL runs sql as the superuser and returns its output; an error fails the test.
func (s *Server) AdminSQL(t testing.TB, sql string) string {
	t.Helper()
	out, err := s.Psql(t, s.AdminUser, s.AdminPassword, sql)
	if err != nil {
		t.Fatalf("testpg: %v", err)
	}
	return out
}

// Roles returns the names of every role in pg_roles, sorted, as the superuser reads them.
func (s *Server) Roles(t testing.TB) []string {
	t.Helper()
	out := s.AdminSQL(t, "SELECT rolname FROM pg_roles ORDER BY rolname")
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// RoleExists says whether pg_roles has a role of that name.
func (s *Server) RoleExists(t testing.TB, name string) bool {
	t.Helper()
	for _, r := range s.Roles(t) {
		if r == name {
			return true
		}
	}
	return false
}

// Log returns the server's log so far.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// initdb makes the cluster: the superuser with its password, passwords (scram-sha-256) for
// TCP, trust on the unix socket, which only sits in the server's own 0700 directory.
func (s *Server) initdb() error {
	pwfile := filepath.Join(s.Dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.AdminPassword+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pwfile)
	if err := chown(pwfile, s.cred); err != nil {
		return err
	}
	// --no-sync and fsync=off: a throwaway server need not survive a power cut.
	cmd := exec.Command(s.bins.initdb, "-D", s.dataDir, "-U", s.AdminUser, "--pwfile="+pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync")
	cmd.Env = serverEnv()
	cmd.Dir = s.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf(`
# testpg: a throwaway server for one test.
listen_addresses = '127.0.0.1'
unix_socket_directories = '%s'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
log_connections = on
logging_collector = off
`, s.Dir)
	f, err := os.OpenFile(filepath.Join(s.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(conf); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var errPortTaken = errors.New("the port was taken")

// start runs postgres itself (not through pg_ctl start, which detaches it) as a child in a
// process group of its own that gets SIGQUIT, an immediate shutdown, if this process dies,
// so a test binary killed by its timeout leaves no server behind.
func (s *Server) start() error {
	port, err := testproc.FreePort()
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(s.bins.postgres, "-D", s.dataDir, "-p", strconv.Itoa(port))
	cmd.Env = serverEnv()
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr(s.cred)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("postgres: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd, s.exited, s.Port = cmd, exited, port

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			if strings.Contains(s.Log(), "could not bind") {
				return errPortTaken
			}
			return fmt.Errorf("postgres exited while starting: %v", cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if s.ready(cmd.Process.Pid) {
			return nil
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("postgres not ready after %s", startTimeout)
		}
	}
}

// ready reads postmaster.pid as pg_ctl -w does: its pid on line 1, its status on line 8.
func (s *Server) ready(pid int) bool {
	b, err := os.ReadFile(filepath.Join(s.dataDir, "postmaster.pid"))
	if err != nil {
		return false
	}
	lines := strings.Split(string(b), "\n")
	return len(lines) >= 8 && strings.TrimSpace(lines[0]) == strconv.Itoa(pid) &&
		strings.TrimSpace(lines[7]) == "ready"
}

// stop asks pg_ctl for an immediate shutdown and kills the process group if that fails.
func (s *Server) stop() error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	cmd := exec.Command(s.bins.pgCtl, "stop", "-D", s.dataDir, "-m", "immediate", "-w", "-t", strconv.Itoa(int(stopTimeout.Seconds())))
	cmd.Env = serverEnv()
	cmd.Dir = s.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	out, stopErr := cmd.CombinedOutput()
	select {
	case <-s.exited:
		return nil
	case <-time.After(stopTimeout):
	}
	s.kill()
	return fmt.Errorf("pg_ctl stop -m immediate did not stop postgres (killed its process group): %v\n%s", stopErr, out)
}

// kill sends SIGKILL to the server's process group (the postmaster and its backends) and
// waits for the postmaster.
func (s *Server) kill() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
}

// serverEnv is the environment of initdb, postgres and pg_ctl: this process's, in the C
// locale, without PG* variables that would point them elsewhere.
func serverEnv() []string {
	return append(environWithoutPG(), "LC_ALL=C", "LANG=C")
}

func environWithoutPG() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") && !strings.HasPrefix(kv, "LC_ALL=") && !strings.HasPrefix(kv, "LANG=") {
			env = append(env, kv)
		}
	}
	return env
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
