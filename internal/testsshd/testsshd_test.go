package testsshd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// newCA makes a certificate authority's key pair with ssh-keygen, as the harness's own
// stand-in for Vault's SSH CA.
func newCA(t *testing.T) (privateKeyPath, publicKey string) {
	t.Helper()
	ca := NewKeyPair(t)
	return ca.PrivateKeyPath, ca.PublicKey
}

// sign certifies key with the CA for principal, valid over validity (ssh-keygen -V), and
// returns the certificate's path.
func sign(t *testing.T, caPrivateKey string, key KeyPair, principal, validity string) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-s", caPrivateKey, "-I", "testsshd-test", "-n", principal,
		"-V", validity, key.PublicKeyPath).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -s: %v\n%s", err, out)
	}
	return key.CertificatePath()
}

// A certificate from the trusted CA for the server's account logs in and runs a command;
// every other credential is refused, and the log says why.
func TestCertificateLogins(t *testing.T) {
	caKey, caPublic := newCA(t)
	otherCAKey, _ := newCA(t)
	s := Start(t, caPublic)

	key := NewKeyPair(t)
	cert := sign(t, caKey, key, s.User, "+5m")
	out, err := s.Login(t, key.PrivateKeyPath, cert, "echo ok")
	if err != nil || out != "ok" {
		t.Fatalf("login with a valid certificate: %q, %v\nsshd log:\n%s", out, err, s.Log())
	}
	if out, err := s.Login(t, key.PrivateKeyPath, cert, "id -un"); err != nil || out != s.User {
		t.Errorf("id -un: %q, %v; want %s", out, err, s.User)
	}
	if !strings.Contains(s.Log(), "Accepted publickey for "+s.User) {
		t.Errorf("the log does not show the accepted login:\n%s", s.Log())
	}

	refused := []struct {
		name    string
		cert    func(key KeyPair) string
		logHint string // what sshd's log says about the refusal (for another CA, no more than Failed)
	}{
		{"signed by another CA", func(k KeyPair) string { return sign(t, otherCAKey, k, s.User, "+5m") }, "Failed publickey for " + s.User},
		{"validity ended", func(k KeyPair) string { return sign(t, caKey, k, s.User, "-2h:-1h") }, "expired"},
		{"validity not begun", func(k KeyPair) string { return sign(t, caKey, k, s.User, "+1h:+2h") }, "not yet valid"},
		{"another principal", func(k KeyPair) string { return sign(t, caKey, k, "someone-else", "+5m") }, "not a listed principal"},
		{"no certificate", func(KeyPair) string { return "" }, "Failed publickey for " + s.User},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			key := NewKeyPair(t)
			cert := tc.cert(key)
			before := len(s.Log())
			out, err := s.Login(t, key.PrivateKeyPath, cert, "echo ok")
			if err == nil {
				t.Fatalf("login accepted (%q)\nsshd log:\n%s", out, s.Log())
			}
			if !strings.Contains(err.Error(), "Permission denied") {
				t.Errorf("ssh's error does not say Permission denied: %v", err)
			}
			log := s.Log()[before:]
			if !strings.Contains(log, tc.logHint) || strings.Contains(log, "Accepted publickey") {
				t.Errorf("sshd's log does not say %q, or says Accepted publickey:\n%s", tc.logHint, log)
			}
		})
	}
}

// A certificate written from its text (as Vault returns signed_key) logs in too.
func TestWriteCertificate(t *testing.T) {
	caKey, caPublic := newCA(t)
	s := Start(t, caPublic)
	key := NewKeyPair(t)
	signed, err := os.ReadFile(sign(t, caKey, key, s.User, "+5m"))
	if err != nil {
		t.Fatal(err)
	}
	other := KeyPair{PrivateKeyPath: filepath.Join(t.TempDir(), "id"), PublicKeyPath: key.PublicKeyPath}
	if err := os.Link(key.PrivateKeyPath, other.PrivateKeyPath); err != nil {
		t.Fatal(err)
	}
	cert := other.WriteCertificate(t, string(signed))
	if out, err := s.Login(t, other.PrivateKeyPath, cert, "echo ok"); err != nil || out != "ok" {
		t.Fatalf("login: %q, %v\nsshd log:\n%s", out, err, s.Log())
	}
}

// The test's cleanup stops sshd.
func TestCleanupStopsTheServer(t *testing.T) {
	_, caPublic := newCA(t)
	var s *Server
	t.Run("server", func(t *testing.T) { s = Start(t, caPublic) })
	select {
	case <-s.exited:
	default:
		t.Errorf("sshd (pid %d) still running after the test's cleanup", s.cmd.Process.Pid)
	}
}
