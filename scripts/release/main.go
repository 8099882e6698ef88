// Command release is `make release VERSION=vX.Y.Z`: it cross-compiles the plugin for each
// platform, packs each binary with the LICENSE into
// dist/vault-plugin-apono_<version>_<os>_<arch>.zip, writes
// dist/vault-plugin-apono_<version>_SHA256SUMS over the zips (sha256sum's format), and
// prints, and writes to dist/vault-plugin-apono_<version>_register.txt, the sha256 of each
// unzipped binary beside the `vault plugin register` command that uses it.
//
// The output depends only on the source tree, the version, the Go toolchain and the
// module versions in go.sum: builds are -trimpath, -buildvcs=false, with an empty build
// ID and CGO_ENABLED=0, and the zips have fixed entry order, times and permissions. Two
// runs in different folders, or on different machines with the same Go, give the same
// bytes (scripts/release/release_test.go checks it).
package main

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

const (
	plugin     = "vault-plugin-apono"
	mainPkg    = "./cmd/" + plugin
	versionVar = "github.com/apono-io/vault-plugin-apono/backend.Version"
	// defaultPlatforms is what a release holds.
	defaultPlatforms = "linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64 freebsd/amd64"
)

// zipTime is every zip entry's modification time, so the zips do not depend on when or
// where they were made: the earliest time a zip's MS-DOS date can hold.
var zipTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// versionRe is a semantic version with a leading v, as Vault's -version wants it.
var versionRe = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

type platform struct{ os, arch string }

func (p platform) String() string { return p.os + "_" + p.arch }

// binary is the file name of the plugin on p.
func (p platform) binary() string {
	if p.os == "windows" {
		return plugin + ".exe"
	}
	return plugin
}

func parsePlatforms(s string) ([]platform, error) {
	var out []platform
	seen := map[platform]bool{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' }) {
		goos, goarch, ok := strings.Cut(f, "/")
		if !ok || goos == "" || goarch == "" {
			return nil, fmt.Errorf("platform %q is not os/arch", f)
		}
		p := platform{goos, goarch}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no platforms")
	}
	return out, nil
}

func main() {
	version := flag.String("version", "", "the release version, vX.Y.Z (required)")
	out := flag.String("out", "dist", "directory for the zips and checksums (earlier "+plugin+"_* files in it are removed first)")
	platforms := flag.String("platforms", defaultPlatforms, "os/arch pairs to build, separated by spaces or commas")
	flag.Parse()
	if err := run(*version, *out, *platforms, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(version, out, platformList string, stdout io.Writer) error {
	if !versionRe.MatchString(version) {
		return fmt.Errorf("-version %q is not a version like v1.2.3", version)
	}
	plats, err := parsePlatforms(platformList)
	if err != nil {
		return fmt.Errorf("-platforms: %w", err)
	}
	license, err := os.ReadFile("LICENSE")
	if err != nil {
		return fmt.Errorf("run from the repository root: %w", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	// What an earlier release left in out (another version, other platforms) would sit
	// beside this one's SHA256SUMS without being in it.
	stale, err := filepath.Glob(filepath.Join(out, plugin+"_*"))
	if err != nil {
		return err
	}
	for _, f := range stale {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "release-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	goVersion, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return fmt.Errorf("go env GOVERSION: %w", err)
	}
	sums := map[string]string{} // zip name -> sha256
	var register strings.Builder
	fmt.Fprintf(&register, "%s %s, built with %s; register the binary of your platform (unzipped into Vault's plugin directory):\n\n",
		plugin, version, strings.TrimSpace(string(goVersion)))
	for _, p := range plats {
		bin := filepath.Join(tmp, p.String(), p.binary())
		if err := build(p, version, bin); err != nil {
			return err
		}
		binBytes, err := os.ReadFile(bin)
		if err != nil {
			return err
		}
		zipName := fmt.Sprintf("%s_%s_%s.zip", plugin, version, p)
		zipBytes, err := zipFiles([]zipEntry{
			{name: p.binary(), mode: 0o755, data: binBytes},
			{name: "LICENSE", mode: 0o644, data: license},
		})
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, zipName), zipBytes, 0o644); err != nil {
			return err
		}
		sums[zipName] = sha256hex(zipBytes)
		fmt.Fprintf(&register, "%s (%s in %s, %d bytes), sha256 %s\n  vault plugin register -sha256=%s -version=%s -command=%s secret %s\n\n",
			p, p.binary(), zipName, len(binBytes), sha256hex(binBytes), sha256hex(binBytes), version, p.binary(), plugin)
	}
	sumsName := fmt.Sprintf("%s_%s_SHA256SUMS", plugin, version)
	if err := os.WriteFile(filepath.Join(out, sumsName), []byte(sha256sums(sums)), 0o644); err != nil {
		return err
	}
	registerName := fmt.Sprintf("%s_%s_register.txt", plugin, version)
	if err := os.WriteFile(filepath.Join(out, registerName), []byte(register.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, register.String())
	fmt.Fprintf(stdout, "wrote %d zips, %s and %s to %s\n", len(plats), sumsName, registerName, out)
	return nil
}

// build cross-compiles the plugin for p into path. Settings that would make the binary
// depend on this machine or folder are fixed; GOFLAGS and the GOAMD64-style level
// variables from the environment are overridden so a local setting cannot leak in.
func build(p platform, version, path string) error {
	ldflags := fmt.Sprintf("-buildid= -X %s=%s", versionVar, version)
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", path, mainPkg)
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0", "GOOS="+p.os, "GOARCH="+p.arch, "GOFLAGS=", "GOAMD64=v1", "GOARM64=v8.0")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = os.Stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build for %s: %w\n%s", p, err, stderr.String())
	}
	return nil
}

type zipEntry struct {
	name string
	mode os.FileMode
	data []byte
}

// zipFiles writes entries, in the order given, into a zip whose bytes depend only on them:
// every entry has the same fixed time and its given Unix permissions.
func zipFiles(entries []zipEntry) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: zipTime}
		h.SetMode(e.mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func sha256hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// sha256sums formats name -> sha256 as sha256sum prints it ("<hex>  <name>"), sorted by
// name.
func sha256sums(sums map[string]string) string {
	var names []string
	for name := range sums {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		fmt.Fprintf(&b, "%s  %s\n", sums[name], name)
	}
	return b.String()
}
