package testvault

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

const (
	// PluginName is the plugin's binary name and its name in Vault's plugin catalog.
	PluginName = "vault-plugin-apono"
	// DefaultPluginVersion is the version StartWithPlugin registers when none is given.
	DefaultPluginVersion = "v0.1.0"

	modulePath  = "github.com/apono-io/vault-plugin-apono"
	versionVar  = modulePath + "/backend.Version"
	pluginMain  = "./cmd/vault-plugin-apono"
	buildScript = "scripts/build-vault.sh"
)

// RepoRoot returns the module root: the nearest directory at or above the working
// directory that holds a go.mod. `go test` runs in the package's directory, so walking
// up finds the repository from any package.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testvault: no go.mod found above the working directory")
		}
		dir = parent
	}
}

var vaultBin struct {
	once sync.Once
	path string
	err  error
}

// VaultBinary returns the path of the server binary (vault, or bao for OpenBao) of
// ServerName: $VAULT_BIN when set (it must be that server), otherwise the one
// scripts/build-vault.sh prints (it builds the server on first use, which takes minutes on
// a fresh machine, then reuses the cached binary). The answer is computed once per process.
func VaultBinary() (string, error) {
	vaultBin.once.Do(func() {
		vaultBin.path, vaultBin.err = findVaultBinary()
	})
	return vaultBin.path, vaultBin.err
}

func findVaultBinary() (string, error) {
	name := ServerName()
	if err := checkServerName(name); err != nil {
		return "", err
	}
	if p := os.Getenv("VAULT_BIN"); p != "" {
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("testvault: VAULT_BIN: %w", err)
		}
		if err := checkServerBinary(p, name); err != nil {
			return "", err
		}
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	// `go test ./...` runs test binaries of several packages at once: the script takes a
	// lock per server, so only the first builds and the others wait for its binary.
	cmd := exec.Command("bash", filepath.Join(root, buildScript), name)
	cmd.Dir = root
	cmd.Stderr = os.Stderr // the build takes minutes when cold: show its progress
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("testvault: %s %s failed: %w", buildScript, name, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	p := strings.TrimSpace(lines[len(lines)-1])
	if err := checkExecutable(p); err != nil {
		return "", fmt.Errorf("testvault: %s printed %q: %w", buildScript, p, err)
	}
	return p, nil
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// BuildPlugin builds the plugin into dir/vault-plugin-apono with backend.Version set to
// version (Vault 1.14 refuses to register a plugin whose reported version differs from
// the -version it is registered with) and returns the binary's path and SHA-256 in hex.
func BuildPlugin(dir, version string) (binPath, sha256hex string, err error) {
	if version == "" || strings.ContainsAny(version, " \t\n'\"") {
		// -ldflags is split on spaces by the go command.
		return "", "", fmt.Errorf("testvault: bad plugin version %q", version)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	binPath, err = filepath.Abs(filepath.Join(dir, PluginName))
	if err != nil {
		return "", "", err
	}
	cmd := exec.Command("go", "build", "-ldflags", "-X "+versionVar+"="+version, "-o", binPath, pluginMain)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("testvault: building the plugin: %w\n%s", err, out.String())
	}
	sha256hex, err = fileSHA256(binPath)
	if err != nil {
		return "", "", err
	}
	return binPath, sha256hex, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// builds caches one plugin build per version for the life of the process: every server
// gets a copy, so a test run links the plugin once however many servers it starts.
var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]builtPlugin
}

type builtPlugin struct{ path, sha string }

// InstallPlugin copies the plugin, built with the given version (once per process), into
// pluginDir and returns its SHA-256 in hex, ready for RegisterPlugin. Call it before
// starting servers whose plugin directory is pluginDir.
func InstallPlugin(pluginDir, version string) (sha256hex string, err error) {
	builds.mu.Lock()
	b, ok := builds.bins[version]
	if !ok {
		if builds.dir == "" {
			if builds.dir, err = newBuildDir(); err != nil {
				builds.mu.Unlock()
				return "", err
			}
			builds.bins = map[string]builtPlugin{}
		}
		b.path, b.sha, err = BuildPlugin(filepath.Join(builds.dir, version), version)
		if err == nil {
			builds.bins[version] = b
		}
	}
	builds.mu.Unlock()
	if err != nil {
		return "", err
	}
	if err := copyFile(b.path, filepath.Join(pluginDir, PluginName), 0o755); err != nil {
		return "", fmt.Errorf("testvault: installing the plugin: %w", err)
	}
	return b.sha, nil
}

const buildDirPrefix = "testvault-plugin-pid"

// newBuildDir makes this process's build directory in the system temp directory, named
// after its pid, and first deletes those of processes that are gone: a test binary that
// skips RemoveBuilds, or is killed, would otherwise leave ~40 MB behind on every run.
func newBuildDir() (string, error) {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), buildDirPrefix+"*"))
	for _, m := range matches {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(m), buildDirPrefix))
		if err != nil || pid <= 0 {
			continue
		}
		if pid == os.Getpid() || errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			_ = os.RemoveAll(m)
		}
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("%s%d", buildDirPrefix, os.Getpid()))
	return dir, os.Mkdir(dir, 0o700)
}

// RemoveBuilds deletes the per-process plugin builds that InstallPlugin keeps in the
// system temp directory; call it from TestMain (or at the end of a program) after m.Run.
// Without it the next process to build the plugin deletes them.
func RemoveBuilds() error {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir == "" {
		return nil
	}
	err := os.RemoveAll(builds.dir)
	builds.dir, builds.bins = "", nil
	return err
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	// Write beside dst and rename, so a server never executes a half-written binary.
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
