// Package testvault starts real servers, with the vault-plugin-apono plugin registered,
// for the end-to-end tests and the standalone benchmark programs. The server is the one
// $VAULT_SERVER names (ServerName): HashiCorp Vault 1.14.2, the last MPL-2.0 release and
// the default; OpenBao 2.6.2; or Vault 1.21.4. scripts/build-vault.sh builds each.
//
// Every behaviour of the plugin is proved against a real server and its own CLI (`vault`,
// or `bao` for OpenBao), so this package drives both: it builds the plugin, starts dev,
// file-backed and raft servers on loopback ports, performs the vendor's documented setup
// word for word, and keeps each server's combined log in a file that tests can search for
// leaked secrets.
//
// Functions return errors rather than failing a test, so programs outside `go test` can
// use them; the few helpers that take a testing.TB say so in their names (suffix T, Must).
// The package is for Unix systems (process groups are used to stop Vault and its plugins).
package testvault
