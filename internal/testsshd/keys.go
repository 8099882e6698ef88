package testsshd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// KeyPair is a throwaway ed25519 client key pair in the test's temporary directory.
type KeyPair struct {
	PrivateKeyPath string // for Login (ssh -i)
	PublicKeyPath  string // PrivateKeyPath + ".pub"
	PublicKey      string // the public key line, as Vault's ssh sign endpoint takes it
}

// NewKeyPair makes a key pair with ssh-keygen -t ed25519 and no passphrase.
func NewKeyPair(t testing.TB) KeyPair {
	t.Helper()
	priv := filepath.Join(t.TempDir(), "id_ed25519")
	out, err := exec.Command(lookClient(t, "ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", "testsshd client key", "-f", priv).CombinedOutput()
	if err != nil {
		t.Fatalf("testsshd: ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(priv + ".pub")
	if err != nil {
		t.Fatalf("testsshd: %v", err)
	}
	return KeyPair{PrivateKeyPath: priv, PublicKeyPath: priv + ".pub", PublicKey: strings.TrimSpace(string(pub))}
}

// CertificatePath is where ssh-keygen -s puts the certificate of this key, and where
// WriteCertificate writes one: PrivateKeyPath + "-cert.pub".
func (k KeyPair) CertificatePath() string { return k.PrivateKeyPath + "-cert.pub" }

// WriteCertificate writes a signed certificate (Vault's signed_key) to CertificatePath and
// returns that path, for Login.
func (k KeyPair) WriteCertificate(t testing.TB, signedKey string) string {
	t.Helper()
	if err := os.WriteFile(k.CertificatePath(), []byte(strings.TrimSpace(signedKey)+"\n"), 0o644); err != nil {
		t.Fatalf("testsshd: %v", err)
	}
	return k.CertificatePath()
}
