package testvault

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	// MountPath is where StartWithPlugin enables the plugin.
	MountPath = "apono"
	// PolicyName is the vendor's management policy, written by SeedSetup.
	PolicyName = "apono-management"
	// AppRoleName is the vendor's AppRole for the plugin, created by SeedSetup.
	AppRoleName = "apono-plugin"
	// policyFile holds the vendor's management policy verbatim, relative to the repo root.
	policyFile = "testdata/apono-management.hcl"
)

// Setup is what StartWithPlugin did to a server.
type Setup struct {
	RoleID, SecretID string // the plugin's AppRole credentials from SeedSetup
	Version          string // plugin version registered and enabled at MountPath
	PluginSHA        string // SHA-256 (hex) of the registered plugin binary
}

// SeedSetup performs the vendor's documented Vault setup for Apono with the real CLI,
// command for command, and returns the AppRole's role_id and a new secret_id.
func (s *Server) SeedSetup() (roleID, secretID string, err error) {
	return s.SeedSetupIn("")
}

// SeedSetupIn is SeedSetup inside namespace ns (its own auth methods, mounts, policy and
// AppRole); "" is the root namespace.
func (s *Server) SeedSetupIn(ns string) (roleID, secretID string, err error) {
	root, err := RepoRoot()
	if err != nil {
		return "", "", err
	}
	policy, err := os.ReadFile(filepath.Join(root, policyFile))
	if err != nil {
		return "", "", err
	}
	steps := [][]string{
		{"auth", "enable", "approle"},
		{"auth", "enable", "userpass"},
		{"secrets", "enable", "-path=kv", "kv-v2"},
		{"secrets", "enable", "-path=transit", "transit"},
	}
	for _, args := range steps {
		if _, _, err := s.CLIIn(ns, "", args...); err != nil {
			return "", "", err
		}
	}
	if _, _, err := s.cliStdinIn(ns, string(policy), "policy", "write", PolicyName, "-"); err != nil {
		return "", "", err
	}
	if _, _, err := s.CLIIn(ns, "", "write", "auth/approle/role/"+AppRoleName,
		"token_policies="+PolicyName, "token_ttl=60m", "token_max_ttl=4h"); err != nil {
		return "", "", err
	}
	out, _, err := s.CLIIn(ns, "", "read", "-field=role_id", "auth/approle/role/"+AppRoleName+"/role-id")
	if err != nil {
		return "", "", err
	}
	roleID = strings.TrimSpace(out)
	out, _, err = s.CLIIn(ns, "", "write", "-f", "-field=secret_id", "auth/approle/role/"+AppRoleName+"/secret-id")
	if err != nil {
		return "", "", err
	}
	secretID = strings.TrimSpace(out)
	if roleID == "" || secretID == "" {
		return "", "", fmt.Errorf("testvault: empty role_id or secret_id from the AppRole")
	}
	return roleID, secretID, nil
}

// RegisterPlugin registers the plugin binary in PluginDir as a secrets plugin of the
// given version.
func (s *Server) RegisterPlugin(sha256hex, version string) error {
	_, _, err := s.CLI("", "plugin", "register", "-sha256="+sha256hex, "-version="+version,
		"-command="+PluginName, "secret", PluginName)
	return err
}

// RegisterPluginEnv is RegisterPlugin with KEY=VALUE pairs for the plugin process's
// environment. Vault 1.14's `vault plugin register` has no -env flag, so this writes the
// catalog entry (sys/plugins/catalog/secret/<name>) with the CLI's generic write.
func (s *Server) RegisterPluginEnv(sha256hex, version string, env []string) error {
	if len(env) == 0 {
		return s.RegisterPlugin(sha256hex, version)
	}
	args := []string{"write", "sys/plugins/catalog/secret/" + PluginName,
		"sha256=" + sha256hex, "version=" + version, "command=" + PluginName}
	for _, kv := range env {
		args = append(args, "env="+kv)
	}
	_, _, err := s.CLI("", args...)
	return err
}

// EnablePlugin mounts the given registered version of the plugin at path.
func (s *Server) EnablePlugin(path, version string) error {
	_, _, err := s.CLI("", "secrets", "enable", "-path="+path, "-plugin-version="+version, PluginName)
	return err
}

// SetupPlugin runs SeedSetup, registers the plugin already installed in PluginDir (see
// InstallPlugin) and enables it at MountPath. It does not configure the plugin.
func (s *Server) SetupPlugin(version, sha256hex string) (*Setup, error) {
	return s.SetupPluginEnv(version, sha256hex, nil)
}

// SetupPluginEnv is SetupPlugin with KEY=VALUE pairs for the plugin process's environment.
func (s *Server) SetupPluginEnv(version, sha256hex string, env []string) (*Setup, error) {
	roleID, secretID, err := s.SeedSetup()
	if err != nil {
		return nil, err
	}
	if err := s.RegisterPluginEnv(sha256hex, version, env); err != nil {
		return nil, err
	}
	if err := s.EnablePlugin(MountPath, version); err != nil {
		return nil, err
	}
	return &Setup{RoleID: roleID, SecretID: secretID, Version: version, PluginSHA: sha256hex}, nil
}

// StartWithPlugin starts a dev server with the plugin (built once per process) in its
// plugin directory, performs SeedSetup, and registers and enables the plugin at
// MountPath. The plugin is left unconfigured.
func StartWithPlugin(opts Options) (*Server, *Setup, error) {
	if _, err := VaultBinary(); err != nil {
		return nil, nil, err
	}
	version := opts.PluginVersion
	if version == "" {
		version = DefaultPluginVersion
	}
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "testvault-")
		if err != nil {
			return nil, nil, err
		}
		opts.Dir = dir
	}
	if opts.PluginDir == "" {
		opts.PluginDir = filepath.Join(opts.Dir, "plugins")
	}
	sha, err := InstallPlugin(opts.PluginDir, version)
	if err != nil {
		return nil, nil, err
	}
	s, err := StartDev(opts)
	if err != nil {
		return nil, nil, err
	}
	setup, err := s.SetupPluginEnv(version, sha, opts.PluginEnv)
	if err != nil {
		_ = s.Stop()
		return nil, nil, fmt.Errorf("%w%s", err, s.logTail())
	}
	return s, setup, nil
}

// StartWithPluginT is StartWithPlugin for tests: the server lives in tb.TempDir(), is
// stopped when the test ends, and any failure fails the test.
func StartWithPluginT(tb testing.TB, opts Options) (*Server, *Setup) {
	tb.Helper()
	if opts.Dir == "" {
		opts.Dir = tb.TempDir()
	}
	s, setup, err := StartWithPlugin(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return s, setup
}

// MustCLI is CLI for tests: it returns stdout and fails the test on error. (A generic
// Must(tb, v, err) cannot take a call's two results next to tb, so helpers are specific.)
func (s *Server) MustCLI(tb testing.TB, token string, args ...string) string {
	tb.Helper()
	out, _, err := s.CLI(token, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func (s *Server) cliStdinIn(ns, stdin string, args ...string) (string, string, error) {
	return s.cli(ns, "", strings.NewReader(stdin), args)
}
