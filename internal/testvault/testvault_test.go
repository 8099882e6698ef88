package testvault

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	_ = RemoveBuilds()
	os.Exit(code)
}

func TestStartDevAndSeed(t *testing.T) {
	began := time.Now()
	srv, setup := StartWithPluginT(t, Options{})
	t.Logf("StartWithPlugin took %s (Vault at %s, log %s)", time.Since(began), srv.Addr, srv.LogPath)

	// The server and CLI that run are the ones VAULT_SERVER names.
	if v := srv.MustCLI(t, "", "version"); !strings.HasPrefix(v, serverVersionLine[ServerName()]) {
		t.Errorf("%s version = %q, want %s (VAULT_SERVER=%s)", CLIName(), v, serverVersionLine[ServerName()], ServerName())
	}
	sha := strings.TrimSpace(srv.MustCLI(t, "", "plugin", "info", "-version="+DefaultPluginVersion, "-field=sha256", "secret", PluginName))
	if sha != setup.PluginSHA || len(sha) != 64 {
		t.Errorf("plugin info sha256 = %q, want %q", sha, setup.PluginSHA)
	}
	if mounts := srv.MustCLI(t, "", "secrets", "list"); !strings.Contains(mounts, MountPath+"/") {
		t.Errorf("secrets list has no %s/:\n%s", MountPath, mounts)
	}

	// The plugin's credentials must log in and carry the vendor's policy, which must in
	// turn grant what it says (reading sys/mounts).
	token := strings.TrimSpace(srv.MustCLI(t, "", "write", "-field=token", "auth/approle/login",
		"role_id="+setup.RoleID, "secret_id="+setup.SecretID))
	var lookup struct {
		Data struct {
			Policies []string `json:"policies"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(srv.MustCLI(t, token, "token", "lookup", "-format=json")), &lookup); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(lookup.Data.Policies, PolicyName) {
		t.Errorf("AppRole token policies = %v, want %s among them", lookup.Data.Policies, PolicyName)
	}
	srv.MustCLI(t, token, "secrets", "list")

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if log, err := os.ReadFile(srv.LogPath); err != nil || !strings.Contains(string(log), PluginName) {
		t.Errorf("Vault log %s does not mention the plugin (err %v)", srv.LogPath, err)
	}
}

func TestFileRestart(t *testing.T) {
	srv, err := StartFile(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	srv.MustCLI(t, "", "secrets", "enable", "-path=kv", "kv-v2")
	srv.MustCLI(t, "", "kv", "put", "kv/survivor", "a=b")
	began := time.Now()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Restart took %s", time.Since(began))
	if got := strings.TrimSpace(srv.MustCLI(t, "", "kv", "get", "-field=a", "kv/survivor")); got != "b" {
		t.Errorf("after restart kv/survivor a = %q, want b", got)
	}
}

func TestRaftCluster(t *testing.T) {
	began := time.Now()
	servers, err := StartRaftCluster(3, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("3-node raft cluster took %s", time.Since(began))
	defer func() {
		for _, s := range servers {
			if err := s.Stop(); err != nil {
				t.Error(err)
			}
		}
	}()

	// A raft election can leave the cluster leaderless for a moment (more likely on a
	// loaded machine), so look for a stable picture rather than trusting one sample.
	var active string
	var picture []string
	for deadline := time.Now().Add(30 * time.Second); ; {
		active, picture = "", nil
		actives, standbys := 0, 0
		for _, s := range servers {
			code, err := s.HealthCode()
			if err != nil {
				t.Fatal(err)
			}
			picture = append(picture, fmt.Sprintf("%s=%d", s.NodeID, code))
			switch code {
			case http.StatusOK:
				active = s.NodeID
				actives++
			case http.StatusTooManyRequests:
				standbys++
			}
		}
		if actives == 1 && standbys == len(servers)-1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sys/health of the nodes: %v; want exactly one 200 and the rest 429", picture)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if s, err := ActiveNode(servers); err != nil || s.NodeID != active {
		t.Errorf("ActiveNode = %v, %v; want %s (%v)", s, err, active, picture)
	}
	// A standby answers with the cluster's data (it forwards to the active node).
	servers[2].MustCLI(t, "", "secrets", "enable", "-path=kv", "kv-v2")
	kvPutOnStandby(t, servers[1], "kv/x", "a=b")
}

// kvPutOnStandby runs `kv put` on a standby right after the KV v2 mount was enabled.
// Vault's standbys forward every request to the active node, whose new mount is ready at
// once. OpenBao's standbys are performance standbys: their own instance of the new mount
// answers, and refuses with a 400 until it has seen the active node finish the KV v2
// upgrade (it looks once a second, builtin/logical/kv/upgrade.go); so there it is retried
// on that refusal only, for up to 10 s.
func kvPutOnStandby(t *testing.T, s *Server, path string, kv ...string) {
	t.Helper()
	args := append([]string{"kv", "put", path}, kv...)
	if !IsOpenBao() {
		s.MustCLI(t, "", args...)
		return
	}
	began := time.Now()
	for {
		_, _, err := s.CLI("", args...)
		if err == nil {
			t.Logf("OpenBao standby %s accepted kv put after %s", s.NodeID, time.Since(began).Round(time.Millisecond))
			return
		}
		if !strings.Contains(err.Error(), "Waiting for the primary to upgrade") || time.Since(began) > 10*time.Second {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// FileAudit gives a dev and a file server a file audit device from the start, on every
// server: on Vault through `vault audit enable`, on OpenBao in the configuration, because
// OpenBao refuses audit devices through the API (checked here, so the difference stays
// known).
func TestFileAudit(t *testing.T) {
	dev, err := StartDev(Options{Dir: t.TempDir(), FileAudit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Stop()
	file, err := StartFile(Options{Dir: t.TempDir(), FileAudit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer file.Stop()
	for _, srv := range []*Server{dev, file} {
		if list := srv.MustCLI(t, "", "audit", "list"); !strings.Contains(list, "file/") {
			t.Errorf("%s audit list has no file/:\n%s", CLIName(), list)
		}
		srv.MustCLI(t, "", "secrets", "enable", "-path=audited", "kv-v2")
		b, err := os.ReadFile(srv.AuditPath)
		if err != nil || !strings.Contains(string(b), `"path":"sys/mounts/audited"`) {
			t.Errorf("audit log %s lacks the mount request (err %v)", srv.AuditPath, err)
		}
		_, stderr, err := srv.CLI("", "audit", "enable", "-path=api", "file", "file_path="+srv.AuditPath+".api")
		switch {
		case IsOpenBao() && (err == nil || !strings.Contains(stderr, "cannot enable audit device via API")):
			t.Errorf("OpenBao enabled an audit device through the API, or refused it otherwise (%v): %s", err, stderr)
		case !IsOpenBao() && err != nil:
			t.Errorf("Vault refused an audit device through the API: %v", err)
		}
	}
}
