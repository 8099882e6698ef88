package main

import (
	"archive/zip"
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

const testVersion = "v0.0.0-repro.1"

// testPlatforms is what the reproducibility test builds: this machine's platform (its
// binary is run under Vault) and one other with another OS and architecture (windows, so
// the .exe naming is covered too). RELEASE_TEST_PLATFORMS replaces the second, e.g. with
// the whole matrix; this machine's platform is always built.
func testPlatforms() string {
	host := runtime.GOOS + "/" + runtime.GOARCH
	other := "windows/arm64"
	if host == other {
		other = "linux/amd64"
	}
	if v := os.Getenv("RELEASE_TEST_PLATFORMS"); v != "" {
		other = v
	}
	return host + " " + other
}

// TestReleaseIsReproducible copies the source tree (the files git tracks or would track,
// as they are now) into two folders of different paths and runs `make release` in each,
// the second with a build cache of its own so that nothing compiled in the first is
// reused, and checks that both dist/ folders hold the same bytes. Then it checks what the
// release holds, and runs this machine's binary under a real Vault.
func TestReleaseIsReproducible(t *testing.T) {
	root, err := testvault.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files := sourceFiles(t, root)
	tmp := t.TempDir()
	dirA := filepath.Join(tmp, "a", "vault-plugin-apono")
	dirB := filepath.Join(tmp, "another-folder", "deeper", "checkout-b")
	cacheB := separateCache(t)
	platforms := testPlatforms()

	for _, c := range []struct {
		dir string
		env []string
	}{
		{dirA, nil},
		{dirB, []string{"GOCACHE=" + cacheB}},
	} {
		copyFiles(t, root, c.dir, files)
		began := time.Now()
		cmd := exec.Command("make", "release", "VERSION="+testVersion, "PLATFORMS="+platforms)
		cmd.Dir = c.dir
		cmd.Env = append(os.Environ(), c.env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make release in %s: %v\n%s", c.dir, err, out)
		}
		t.Logf("make release in %s (%s) took %s", c.dir, strings.Join(c.env, " "), time.Since(began).Round(time.Second))
	}

	distA, distB := readDir(t, filepath.Join(dirA, "dist")), readDir(t, filepath.Join(dirB, "dist"))
	var names []string
	for name := range distA {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t.Logf("%s: %d bytes", name, len(distA[name]))
	}
	for name, a := range distA {
		if b, ok := distB[name]; !ok {
			t.Errorf("%s is in the first release only", name)
		} else if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the two folders (sha256 %s vs %s)", name, sha256hex(a), sha256hex(b))
		}
	}
	for name := range distB {
		if _, ok := distA[name]; !ok {
			t.Errorf("%s is in the second release only", name)
		}
	}
	if t.Failed() {
		return
	}

	license, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	plats, err := parsePlatforms(platforms)
	if err != nil {
		t.Fatal(err)
	}
	bins := checkRelease(t, distA, plats, license)

	host := platform{runtime.GOOS, runtime.GOARCH}
	t.Run("vault reports the version", func(t *testing.T) {
		checkUnderVault(t, bins[host])
	})
}

// checkRelease checks dist's files: one zip per platform holding the binary and the
// LICENSE with fixed times and modes, binaries built as `make release` promises,
// SHA256SUMS over the zips and the register file. It returns each platform's binary.
func checkRelease(t *testing.T, dist map[string][]byte, plats []platform, license []byte) map[platform][]byte {
	t.Helper()
	prefix := plugin + "_" + testVersion + "_"
	want := []string{prefix + "SHA256SUMS", prefix + "register.txt"}
	sums := map[string]string{}
	bins := map[platform][]byte{}
	for _, p := range plats {
		zipName := prefix + p.String() + ".zip"
		want = append(want, zipName)
		z := dist[zipName]
		sums[zipName] = sha256hex(z)
		r, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
		if err != nil {
			t.Fatalf("%s: %v", zipName, err)
		}
		if len(r.File) != 2 || r.File[0].Name != p.binary() || r.File[1].Name != "LICENSE" {
			var got []string
			for _, f := range r.File {
				got = append(got, f.Name)
			}
			t.Fatalf("%s holds %q, want [%s LICENSE]", zipName, got, p.binary())
		}
		for i, mode := range []os.FileMode{0o755, 0o644} {
			f := r.File[i]
			if f.Mode() != mode || !f.Modified.Equal(zipTime) {
				t.Errorf("%s: %s has mode %v and time %s, want %v and %s", zipName, f.Name, f.Mode(), f.Modified, mode, zipTime)
			}
		}
		bin, lic := readZipped(t, r.File[0]), readZipped(t, r.File[1])
		if !bytes.Equal(lic, license) {
			t.Errorf("%s: LICENSE is not the repository's", zipName)
		}
		checkBuildInfo(t, p, bin)
		bins[p] = bin

		reg := string(dist[prefix+"register.txt"])
		cmd := fmt.Sprintf("vault plugin register -sha256=%s -version=%s -command=%s secret %s", sha256hex(bin), testVersion, p.binary(), plugin)
		if !strings.Contains(reg, cmd) {
			t.Errorf("register.txt has no %q:\n%s", cmd, reg)
		}
	}
	var got []string
	for name := range dist {
		got = append(got, name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("dist holds %q, want %q", got, want)
	}
	// sha256sum's format, one line per zip, sorted by name.
	lines := strings.Split(strings.TrimSuffix(string(dist[prefix+"SHA256SUMS"]), "\n"), "\n")
	var names []string
	for _, line := range lines {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok || sums[name] != sum {
			t.Errorf("SHA256SUMS line %q: want the sha256 of a zip of the release, two spaces, its name", line)
		}
		names = append(names, name)
	}
	if len(lines) != len(sums) || !slices.IsSorted(names) {
		t.Errorf("SHA256SUMS has %d lines, sorted %v; want %d, sorted", len(lines), slices.IsSorted(names), len(sums))
	}
	return bins
}

// checkBuildInfo reads the build settings Go records in a binary (the platform, no cgo,
// -trimpath, no VCS stamp) and looks for the version it was built with.
func checkBuildInfo(t *testing.T, p platform, bin []byte) {
	t.Helper()
	info, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	want := map[string]string{"GOOS": p.os, "GOARCH": p.arch, "CGO_ENABLED": "0", "-trimpath": "true"}
	for k, v := range want {
		if settings[k] != v {
			t.Errorf("%s binary: build setting %s = %q, want %q", p, k, settings[k], v)
		}
	}
	// With -trimpath Go does not record -ldflags; the version they set is in the data.
	if !bytes.Contains(bin, []byte(testVersion)) {
		t.Errorf("%s binary does not hold the version %s", p, testVersion)
	}
	for _, k := range []string{"vcs", "vcs.revision", "vcs.time"} {
		if v, ok := settings[k]; ok {
			t.Errorf("%s binary records %s=%s: builds would differ by checkout", p, k, v)
		}
	}
}

// checkUnderVault registers bin (this machine's release binary) in a dev Vault with the
// release's version and checks that the running plugin reports that version.
func checkUnderVault(t *testing.T, bin []byte) {
	if len(bin) == 0 {
		t.Fatal("no binary for this machine's platform in the release")
	}
	pluginDir := filepath.Join(t.TempDir(), "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pluginDir, plugin), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	srv, err := testvault.StartDev(testvault.Options{Dir: t.TempDir(), PluginDir: pluginDir, LogLevel: "info"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	})
	if err := srv.RegisterPlugin(sha256hex(bin), testVersion); err != nil {
		t.Fatal(err)
	}
	if err := srv.EnablePlugin("apono", testVersion); err != nil {
		t.Fatal(err)
	}
	if v := strings.TrimSpace(srv.MustCLI(t, "", "plugin", "info", "-version="+testVersion, "-field=version", "secret", plugin)); v != testVersion {
		t.Errorf("vault plugin info: version %q, want %s", v, testVersion)
	}
	var mounts map[string]struct {
		RunningVersion string `json:"running_plugin_version"`
		RunningSHA     string `json:"running_sha256"`
	}
	if err := json.Unmarshal([]byte(srv.MustCLI(t, "", "secrets", "list", "-detailed", "-format=json")), &mounts); err != nil {
		t.Fatal(err)
	}
	m := mounts["apono/"]
	if m.RunningVersion != testVersion || m.RunningSHA != sha256hex(bin) {
		t.Errorf("apono/ runs version %q sha256 %q, want %s %s", m.RunningVersion, m.RunningSHA, testVersion, sha256hex(bin))
	}
}

// sourceFiles lists what a fresh clone would hold plus uncommitted work: the files git
// tracks or does not ignore, that exist and are regular files (no symlinks such as a
// .tools link to another checkout).
func sourceFiles(t *testing.T, root string) []string {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	var files []string
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if fi, err := os.Lstat(filepath.Join(root, f)); err == nil && fi.Mode().IsRegular() {
			files = append(files, f)
		}
	}
	if !slices.Contains(files, "go.mod") || !slices.Contains(files, "LICENSE") {
		t.Fatalf("git ls-files in %s lists no go.mod or LICENSE", root)
	}
	return files
}

func copyFiles(t *testing.T, from, to string, files []string) {
	t.Helper()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(from, f))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(to, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

// separateCache is a Go build cache used only by this test's second build, kept between
// runs (a cold one costs minutes) in the user's cache folder; Go trims what goes unused.
func separateCache(t *testing.T) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "vault-plugin-apono", "release-test-gocache")
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) == dir {
		t.Fatalf("GOCACHE is %s, the cache this test keeps for its second build", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func readZipped(t *testing.T, f *zip.File) []byte {
	t.Helper()
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestZipDependsOnlyOnItsEntries writes the same entries twice, over two seconds apart (a
// zip's MS-DOS time counts in steps of two), and gets the same bytes; another mode or
// order gives other bytes.
func TestZipDependsOnlyOnItsEntries(t *testing.T) {
	entries := []zipEntry{{name: "bin", mode: 0o755, data: []byte("binary")}, {name: "LICENSE", mode: 0o644, data: []byte("text")}}
	a, err := zipFiles(entries)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	b, err := zipFiles(entries)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("the same entries gave different zips")
	}
	swapped, _ := zipFiles([]zipEntry{entries[1], entries[0]})
	other := slices.Clone(entries)
	other[0].mode = 0o644
	otherMode, _ := zipFiles(other)
	if bytes.Equal(a, swapped) || bytes.Equal(a, otherMode) {
		t.Fatal("order or mode does not reach the zip")
	}
}

func TestParsePlatformsAndVersion(t *testing.T) {
	ps, err := parsePlatforms(defaultPlatforms)
	if err != nil || len(ps) != 7 {
		t.Fatalf("default platforms: %v, %v", ps, err)
	}
	if ps, err := parsePlatforms("linux/amd64, windows/arm64 linux/amd64"); err != nil || len(ps) != 2 || ps[1].binary() != plugin+".exe" {
		t.Fatalf("parsePlatforms: %v, %v", ps, err)
	}
	for _, bad := range []string{"", "linux", "/amd64", "linux/"} {
		if _, err := parsePlatforms(bad); err == nil {
			t.Errorf("platforms %q accepted", bad)
		}
	}
	for _, v := range []string{"v0.1.0", "v1.22.333", "v1.0.0-rc.1", testVersion} {
		if !versionRe.MatchString(v) {
			t.Errorf("version %q refused", v)
		}
	}
	for _, v := range []string{"", "0.1.0", "v1.0", "v01.0.0", "v1.0.0 ", "v1.0.0;rm"} {
		if versionRe.MatchString(v) {
			t.Errorf("version %q accepted", v)
		}
	}
}
