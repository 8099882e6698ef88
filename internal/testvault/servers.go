package testvault

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// The servers $VAULT_SERVER can name; scripts/build-vault.sh builds each of them.
const (
	// Vault1142 is Vault 1.14.2, the last MPL-2.0 Vault, and the default.
	Vault1142 = "vault-1.14.2"
	// OpenBao262 is OpenBao 2.6.2 (MPL-2.0), built from its source archive. Its binary
	// and CLI are `bao`.
	OpenBao262 = "openbao-2.6.2"
	// Vault1214 is Vault 1.21.4 (BUSL-1.1: run in tests, never shipped).
	Vault1214 = "vault-1.21.4"
	// DefaultServer is the server used when $VAULT_SERVER is unset.
	DefaultServer = Vault1142
)

// serverVersionLine is how each server's `version` command starts.
var serverVersionLine = map[string]string{
	Vault1142:  "Vault v1.14.2",
	OpenBao262: "OpenBao v2.6.2",
	Vault1214:  "Vault v1.21.4",
}

// ServerName returns the server every process of a run starts: $VAULT_SERVER, or
// DefaultServer when it is unset. Tests consult it where servers differ in behaviour
// they check, and say so there.
func ServerName() string {
	if n := os.Getenv("VAULT_SERVER"); n != "" {
		return n
	}
	return DefaultServer
}

// IsOpenBao reports whether ServerName is OpenBao rather than HashiCorp Vault.
func IsOpenBao() bool { return strings.HasPrefix(ServerName(), "openbao-") }

// CLIName is the name of the server's own CLI: "bao" for OpenBao, "vault" otherwise.
func CLIName() string {
	if IsOpenBao() {
		return "bao"
	}
	return "vault"
}

// checkServerName fails for a name scripts/build-vault.sh does not build.
func checkServerName(name string) error {
	if _, ok := serverVersionLine[name]; !ok {
		return fmt.Errorf("testvault: unknown VAULT_SERVER %q (one of %s, %s, %s)", name, Vault1142, OpenBao262, Vault1214)
	}
	return nil
}

// checkServerBinary fails unless bin's `version` says it is the server name names, so a
// VAULT_BIN of one server never runs under the name (and the tests' expectations) of
// another.
func checkServerBinary(bin, name string) error {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return fmt.Errorf("testvault: %s version: %w", bin, err)
	}
	if want := serverVersionLine[name]; !strings.HasPrefix(strings.TrimSpace(string(out)), want) {
		return fmt.Errorf("testvault: %s is %q, but VAULT_SERVER=%s wants %s", bin, strings.TrimSpace(string(out)), name, want)
	}
	return nil
}
