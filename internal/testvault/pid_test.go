//go:build linux

package testvault

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apono-io/vault-plugin-apono/internal/procstat"
)

// TestPIDAndPluginPID checks that PID is the vault server this process started and that
// PluginPID is the plugin process running under it, as the benchmarks rely on.
func TestPIDAndPluginPID(t *testing.T) {
	srv, _ := StartWithPluginT(t, Options{})
	vault, err := srv.PID()
	if err != nil {
		t.Fatal(err)
	}
	// The server binary is named after its CLI: vault, or bao for OpenBao.
	if procstat.ParentPID(vault) != os.Getpid() || filepath.Base(procstat.Exe(vault)) != CLIName() {
		t.Fatalf("PID %d: parent %d, executable %q; want a %s child of %d",
			vault, procstat.ParentPID(vault), procstat.Exe(vault), CLIName(), os.Getpid())
	}
	// Vault starts the plugin when the mount is enabled; a read makes sure it runs.
	srv.MustCLI(t, "", "path-help", MountPath+"/config")
	plugin, err := srv.PluginPID()
	if err != nil {
		t.Fatal(err)
	}
	if procstat.ParentPID(plugin) != vault || filepath.Base(procstat.Exe(plugin)) != PluginName {
		t.Fatalf("PluginPID %d: parent %d, executable %q; want a %s child of vault %d",
			plugin, procstat.ParentPID(plugin), procstat.Exe(plugin), PluginName, vault)
	}
	if pids, err := srv.PluginPIDs(); err != nil || !slices.Contains(pids, plugin) {
		t.Fatalf("PluginPIDs = %v, %v: no %d", pids, err, plugin)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.PID(); err == nil {
		t.Error("PID of a stopped server succeeded")
	}
	if _, err := srv.PluginPID(); err == nil {
		t.Error("PluginPID of a stopped server succeeded")
	}
}
