// Package testsshd starts a throwaway OpenSSH server, from Debian's openssh-server package,
// for one test: on 127.0.0.1 and a free port, trusting one SSH certificate authority and
// nothing else (no authorized_keys, no passwords), stopped when the test ends.
package testsshd

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
	"sync"
	"testing"
	"time"
)

const (
	startTimeout  = 20 * time.Second
	stopTimeout   = 10 * time.Second
	loginTimeout  = 60 * time.Second
	startAttempts = 5
	// privsepDir is the empty directory sshd, run as root, chroots its unprivileged
	// pre-authentication child into; Debian's service makes it at boot, tests may not boot.
	privsepDir = "/run/sshd"
)

// Server is one running sshd and what a test needs to log in to it.
type Server struct {
	Port       int
	User       string // the local account logins are for: a valid principal of the certificate
	Dir        string // the server's temporary directory: host key, config, CA key, pid file
	ConfigPath string

	ssh    string
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	log    *syncBuffer
}

// Start starts sshd trusting user certificates signed by trustedUserCAKey (a public key
// line, e.g. Vault's SSH CA's) for logins as Server.User: as root, the unprivileged account
// aponossh, made if it is missing; otherwise the account running the test, which then
// needs a login shell. The test's cleanup stops it. It fails the test, never skips it,
// when OpenSSH is not installed.
func Start(t testing.TB, trustedUserCAKey string) *Server {
	t.Helper()
	begin := time.Now()
	if strings.TrimSpace(trustedUserCAKey) == "" {
		t.Fatal("testsshd: Start needs the CA's public key")
	}
	sshd, err := findSSHD()
	if err != nil {
		t.Fatal(err)
	}
	sshPath := lookClient(t, "ssh")
	keygen := lookClient(t, "ssh-keygen")
	account, err := loginAccount()
	if err != nil {
		t.Fatalf("testsshd: %v", err)
	}
	if os.Geteuid() == 0 {
		if err := os.MkdirAll(privsepDir, 0o755); err != nil {
			t.Fatalf("testsshd: %v", err)
		}
	}

	dir := t.TempDir()
	s := &Server{User: account, Dir: dir, ConfigPath: filepath.Join(dir, "sshd_config"), ssh: sshPath, log: &syncBuffer{}}
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "testsshd host key", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("testsshd: ssh-keygen (host key): %v\n%s", err, out)
	}
	caPath := filepath.Join(dir, "trusted_user_ca_keys.pub")
	if err := os.WriteFile(caPath, []byte(strings.TrimSpace(trustedUserCAKey)+"\n"), 0o644); err != nil {
		t.Fatalf("testsshd: %v", err)
	}
	for attempt := 1; ; attempt++ {
		err := s.start(sshd, hostKey, caPath)
		if err == nil {
			break
		}
		// Another process may take the free port between our look and sshd's bind.
		if errors.Is(err, errPortTaken) && attempt < startAttempts {
			continue
		}
		t.Fatalf("testsshd: %v\n%s", err, s.Log())
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("testsshd: %v", err)
		}
		if t.Failed() {
			t.Logf("testsshd: sshd's log:\n%s", s.Log())
		}
	})
	t.Logf("testsshd: sshd on 127.0.0.1:%d for %s ready in %s", s.Port, s.User, time.Since(begin).Round(time.Millisecond))
	return s
}

// Login runs command on the server with the real ssh client as s.User, offering only the
// private key and, unless certPath is empty, its certificate, and returns the command's
// stdout without the final newline. A refused login is an error carrying ssh's stderr;
// Log says why sshd refused it.
func (s *Server) Login(t testing.TB, privateKeyPath, certPath, command string) (string, error) {
	t.Helper()
	args := []string{"-F", "/dev/null", "-i", privateKeyPath}
	if certPath != "" {
		args = append(args, "-o", "CertificateFile="+certPath)
	}
	args = append(args,
		"-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
		"-p", strconv.Itoa(s.Port), s.User+"@127.0.0.1", command)
	ctx, cancel := context.WithTimeout(context.Background(), loginTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.ssh, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("ssh %s@127.0.0.1 -p %d: %v: %s", s.User, s.Port, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSuffix(stdout.String(), "\n"), nil
}

// Log returns what sshd has logged so far (LogLevel VERBOSE): accepted and refused keys and
// certificates, with the reason for a refusal.
func (s *Server) Log() string { return s.log.String() }

var errPortTaken = errors.New("the port was taken")

// start writes the config for a free port and runs sshd in the foreground (-D), logging to
// stderr (-e), in a process group of its own.
func (s *Server) start(sshd, hostKey, caPath string) error {
	port, err := testproc.FreePort()
	if err != nil {
		return err
	}
	config := fmt.Sprintf(`# testsshd: a throwaway server for one test.
ListenAddress 127.0.0.1:%d
HostKey %s
PidFile %s
TrustedUserCAKeys %s
AuthorizedKeysFile none
AuthorizedPrincipalsFile none
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
UsePAM no
StrictModes no
PermitRootLogin no
AllowUsers %s
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
LogLevel VERBOSE
`, port, hostKey, filepath.Join(s.Dir, "sshd.pid"), caPath, s.User)
	if err := os.WriteFile(s.ConfigPath, []byte(config), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(sshd, "-D", "-e", "-f", s.ConfigPath)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("sshd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd, s.exited, s.Port = cmd, exited, port

	listening := fmt.Sprintf("Server listening on 127.0.0.1 port %d.", port)
	deadline := time.Now().Add(startTimeout)
	for !strings.Contains(s.Log(), listening) {
		select {
		case <-exited:
			if strings.Contains(s.Log(), "Address already in use") {
				return errPortTaken
			}
			return fmt.Errorf("sshd exited while starting: %v", cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("sshd not listening after %s", startTimeout)
		}
	}
	return nil
}

// stop sends sshd SIGTERM, and kills its process group if it has not exited in time.
func (s *Server) stop() error {
	if !testproc.Stop(s.cmd, s.exited, stopTimeout) {
		return fmt.Errorf("sshd did not exit on SIGTERM within %s (killed its process group)", stopTimeout)
	}
	return nil
}

func (s *Server) kill() { testproc.Kill(s.cmd, s.exited) }

// findSSHD returns sshd's absolute path (sshd re-executes itself, so it must have one):
// Debian's /usr/sbin/sshd, which is not on a non-root PATH, else sshd on PATH.
func findSSHD() (string, error) {
	const debian = "/usr/sbin/sshd"
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	if p, err := exec.LookPath("sshd"); err == nil {
		return filepath.Abs(p)
	}
	return "", errors.New("testsshd: sshd is not in /usr/sbin nor on PATH: install Debian's openssh-server package (bash scripts/system-deps.sh as root, or sudo apt-get install -y openssh-server)")
}

func lookClient(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("testsshd: %s is not on PATH: install Debian's openssh-client package (bash scripts/system-deps.sh as root, or sudo apt-get install -y openssh-client)", name)
	}
	return p
}

// syncBuffer is sshd's log: written by exec's copying goroutine, read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
