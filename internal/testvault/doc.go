// Package testvault starts real HashiCorp Vault servers (the MPL-2.0 v1.14.2 binary that
// scripts/build-vault.sh builds) with the vault-plugin-apono plugin registered, for the
// end-to-end tests and the standalone benchmark programs.
//
// Every behaviour of the plugin is proved against a real server and the real `vault` CLI,
// so this package drives both: it builds the plugin, starts dev, file-backed and raft
// servers on loopback ports, performs the vendor's documented setup word for word, and
// keeps each server's combined log in a file that tests can search for leaked secrets.
//
// Functions return errors rather than failing a test, so programs outside `go test` can
// use them; the few helpers that take a testing.TB say so in their names (suffix T, Must).
// The package is for Unix systems (process groups are used to stop Vault and its plugins).
package testvault
