// Package cluster proves that grants end on a Vault HA cluster with integrated (raft)
// storage when the active node dies. It is its own package so that `make test-cluster`
// runs it alone: it starts three Vault servers and takes minutes.
package cluster

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

const (
	shortGrants = 30
	shortTTL    = 30 * time.Second
)

// A 3-node raft cluster with the plugin registered once (the catalog is replicated) and
// present in every node's plugin directory. The plugin's vault_addr is a TCP proxy over
// all three nodes, as a load balancer would be: the plugin of whichever node is active
// reaches Vault through any node that is up (standbys forward to the active node).
//
// A grant written to a standby creates exactly one user and one policy. Then many short
// grants are issued, the active node is killed (SIGKILL, its plugin with it) before any
// has expired, and the node elected next revokes every one of them: no apono-* user,
// policy or grant record is left.
func TestActiveNodeDiesWhileGrantsArePending(t *testing.T) {
	c := startCluster(t)
	active, standbys, servers, setup := c.active, c.standbys, c.servers, c.setup

	// Configured and used through a standby, which forwards to the active node.
	sb := standbys[0]
	sb.MustCLI(t, "", "write", "apono/config", "vault_addr="+c.lb.URL(), "role_id="+setup.RoleID, "secret_id="+setup.SecretID)
	sb.MustCLI(t, "", "kv", "put", "kv/app/db", "v=1")
	sb.MustCLI(t, "", "write", "apono/roles/long", "resources=kv/app/db", "ttl=1h")
	sb.MustCLI(t, "", "write", "apono/roles/short", "resources=kv/app/db", fmt.Sprintf("ttl=%ds", int(shortTTL.Seconds())))

	usersBefore, policiesBefore := aponoObjects(t, active.Client)
	viaStandby := issue(t, sb.Client, "long")
	users, policies := aponoObjects(t, active.Client)
	if len(users) != len(usersBefore)+1 || len(policies) != len(policiesBefore)+1 ||
		!contains(users, viaStandby.username) || !contains(policies, viaStandby.username) {
		t.Fatalf("a grant through standby %s: users %v -> %v, policies %v -> %v; want exactly its one user and one policy added",
			sb.NodeID, usersBefore, users, policiesBefore, policies)
	}

	// An access flow through the standbys: alice asks through one, bob (kv-owners)
	// approves through the other, alice picks the grant up; every write is forwarded to
	// the active node, whose identity store decides who may approve.
	flow := accessFlowThroughStandbys(t, active, standbys)

	// Many short grants, through every node at once.
	issueStart := time.Now()
	grants := make([]issued, shortGrants)
	var wg sync.WaitGroup
	for w := 0; w < len(servers); w++ {
		wg.Add(1)
		go func(c *api.Client, w int) {
			defer wg.Done()
			for i := w; i < shortGrants; i += len(servers) {
				grants[i] = issue(t, c, "short")
			}
		}(servers[w].Client, w)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	issueTook := time.Since(issueStart)
	firstExpiry, lastExpiry := grants[0].expires, grants[0].expires
	for _, g := range grants {
		if g.expires.Before(firstExpiry) {
			firstExpiry = g.expires
		}
		if g.expires.After(lastExpiry) {
			lastExpiry = g.expires
		}
	}

	killedAt := time.Now()
	if !killedAt.Before(firstExpiry) {
		t.Fatalf("issuing %d grants took %s: one expired before the active node could be killed", shortGrants, issueTook)
	}
	if err := active.Kill(); err != nil {
		t.Fatal(err)
	}
	newActive, err := testvault.WaitActiveNode(servers, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	failover := time.Since(killedAt)
	t.Logf("%d grants (ttl %s) issued through all nodes in %s; active %s killed %s before the first expiry; %s active %s later",
		shortGrants, shortTTL, issueTook.Round(time.Millisecond), active.NodeID, firstExpiry.Sub(killedAt).Round(time.Millisecond),
		newActive.NodeID, failover.Round(time.Millisecond))

	// Every short grant's user and policy go, within a bounded time of the last expiry.
	deadline := lastExpiry.Add(2 * time.Minute)
	var left []string
	for {
		users, policies := aponoObjects(t, newActive.Client)
		left = left[:0]
		for _, g := range grants {
			if contains(users, g.username) || contains(policies, g.username) {
				left = append(left, g.username)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d grants still have a user or policy %s after the last expiry: %v",
				len(left), shortGrants, time.Since(lastExpiry).Round(time.Second), left)
		}
		time.Sleep(time.Second)
	}
	t.Logf("all %d short grants removed %s after the last expiry (%s after the first, %s after the kill)",
		shortGrants, time.Since(lastExpiry).Round(time.Second), time.Since(firstExpiry).Round(time.Second), time.Since(killedAt).Round(time.Second))
	log, _ := os.ReadFile(newActive.LogPath)
	t.Logf("new active node's log: %d \"grant revoked\" (lease expiry), %d \"swept an expired grant\" (sweeper)",
		strings.Count(string(log), "grant revoked"), strings.Count(string(log), "swept an expired grant"))

	// The long grant issued through a standby before the failover is still live, and a
	// revoke through the new active node's cluster ends it.
	if !contains(mustList(t, newActive.Client, "auth/userpass/users"), viaStandby.username) {
		t.Fatal("the long grant's user is gone before its revoke")
	}
	if err := newActive.Client.Sys().Revoke(viaStandby.leaseID); err != nil {
		t.Fatal(err)
	}
	// The request survived the failover in raft storage, and its grant ends like any other.
	req, err := newActive.Client.Logical().Read("apono/audit/requests/" + flow.requestID)
	if err != nil || req == nil || req.Data["status"] != "granted" || req.Data["grant_id"] != flow.grantID {
		t.Fatalf("the access-flow request after failover: %v %v", req, err)
	}
	if err := newActive.Client.Sys().Revoke(flow.leaseID); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		users, policies := aponoObjects(t, newActive.Client)
		if len(users)+len(policies) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphans after every grant ended: users %v, policies %v", users, policies)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if keys := mustList(t, newActive.Client, "apono/grants"); len(keys) != 0 {
		t.Fatalf("grant records left: %v", keys)
	}
	secrets := map[string]string{"secret_id": setup.SecretID, "standby grant password": viaStandby.password,
		"access-flow grant password": flow.password}
	for _, g := range grants {
		secrets["password of "+g.username] = g.password
	}
	for _, s := range servers {
		b, err := os.ReadFile(s.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range secrets {
			if strings.Contains(string(b), v) {
				t.Errorf("%s appears in the log of %s", name, s.NodeID)
			}
		}
	}
}

// `vault operator step-down` while the active node revokes a burst of grants. The node
// must take Vault's state lock to step down, its revocation jobs hold that lock (read)
// while the plugin's Revoke calls back into Vault, and those calls wait behind the step
// down: until a plugin call gives up, no node is active and every write waits. The plugin
// bounds its calls into Vault, so another node is active within a few seconds, and it
// revokes what the stepped-down node left.
func TestStepDownWhileRevocationsRun(t *testing.T) {
	c := startCluster(t)
	old := c.active
	if _, err := old.Client.Logical().Write("apono/config", map[string]interface{}{
		"vault_addr": c.lb.URL(), "role_id": c.setup.RoleID, "secret_id": c.setup.SecretID,
	}); err != nil {
		t.Fatal(err)
	}
	old.MustCLI(t, "", "kv", "put", "kv/app/db", "v=1")
	old.MustCLI(t, "", "write", "apono/roles/burst", "resources=kv/app/db", "ttl=10m")

	const n = 150
	grants := make([]issued, n)
	var wg sync.WaitGroup
	for w := 0; w < 2*len(c.servers); w++ {
		wg.Add(1)
		go func(cl *api.Client, w int) {
			defer wg.Done()
			for i := w; i < n; i += 2 * len(c.servers) {
				grants[i] = issue(t, cl, "burst")
			}
		}(c.servers[w%len(c.servers)].Client, w)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	st, err := os.Stat(old.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	offset := st.Size()
	// revokedSince counts the plugin's "grant revoked" lines logged after offset.
	revokedSince := func() int {
		f, err := os.Open(old.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.NewSectionReader(f, offset, 1<<40))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), "grant revoked")
	}
	// Without sync, Vault marks each lease expired in storage and queues its revocation,
	// so what the step-down cuts short is still to be revoked on the next active node.
	revoking := make(chan error, 1)
	go func() {
		_, err := old.Client.Logical().Write("sys/leases/revoke-prefix/apono/grants/burst", map[string]interface{}{"sync": false})
		revoking <- err
	}()
	for waited := time.Now(); revokedSince() < n/4; time.Sleep(5 * time.Millisecond) {
		if time.Since(waited) > time.Minute {
			t.Fatal("the revocation of the grants did not start within a minute")
		}
	}
	if err := old.Client.Sys().StepDown(); err != nil {
		t.Fatal(err)
	}
	steppedDown := time.Now()
	var next *testvault.Server
	for next == nil {
		for _, s := range c.servers {
			if code, err := s.HealthCode(); s != old && err == nil && code == 200 {
				next = s
			}
		}
		if time.Since(steppedDown) > 2*time.Minute {
			t.Fatal("no other node became active within 2 minutes of the step-down")
		}
		time.Sleep(100 * time.Millisecond)
	}
	failover := time.Since(steppedDown)
	left := n - revokedSince()
	t.Logf("step-down of %s during the revocation of %d grants: %s active %s later; %d revocations left to it",
		old.NodeID, n, next.NodeID, failover.Round(100*time.Millisecond), left)
	if err := <-revoking; err != nil {
		t.Logf("the revoke-prefix call, cut short by the step-down: %v", err)
	}
	if left == 0 {
		t.Fatal("every revocation finished before the step-down: the test did not step down mid-burst")
	}
	// A raft election after a step-down takes a few seconds here; 30 s is what a plugin
	// call into Vault could wait before its bound, so this tells the two apart.
	if failover > 15*time.Second {
		t.Errorf("no node was active for %s after the step-down; want under 15 s", failover.Round(100*time.Millisecond))
	}

	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		users, policies := aponoObjects(t, next.Client)
		keys := mustList(t, next.Client, "apono/grants")
		if len(users)+len(policies)+len(keys) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("2 minutes after the step-down: %d users, %d policies, %d grant records left", len(users), len(policies), len(keys))
		}
	}
	t.Logf("every grant's user, policy and record gone %s after the step-down", time.Since(steppedDown).Round(time.Second))
}

// cluster is a 3-node raft Vault cluster with the plugin registered and mounted at
// apono/ (not yet configured), and a TCP proxy over its nodes (the plugin's vault_addr).
type cluster struct {
	servers  []*testvault.Server
	active   *testvault.Server
	standbys []*testvault.Server
	setup    *testvault.Setup
	lb       *testvault.Proxy
}

// startCluster starts the cluster; it is stopped when the test ends, its logs kept if
// the test failed.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "e2e-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	servers, err := testvault.StartRaftCluster(3, testvault.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{servers: servers}
	t.Cleanup(func() {
		if c.lb != nil {
			c.lb.Close()
		}
		for _, s := range servers {
			if err := s.Stop(); err != nil {
				t.Error(err)
			}
		}
		if t.Failed() {
			t.Logf("Vault logs kept under %s", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	})
	t.Logf("3-node raft cluster up in %s", time.Since(began).Round(time.Millisecond))

	if c.active, err = testvault.WaitActiveNode(servers, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		if s != c.active {
			c.standbys = append(c.standbys, s)
		}
	}
	// The harness gives the nodes one shared plugin directory; check that each node's is
	// where the binary is, since the catalog entry is replicated but the binary is not.
	sha, err := testvault.InstallPlugin(c.active.PluginDir, testvault.DefaultPluginVersion)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		if _, err := os.Stat(s.PluginDir + "/" + testvault.PluginName); err != nil {
			t.Fatalf("node %s has no plugin binary: %v", s.NodeID, err)
		}
	}
	if c.setup, err = c.active.SetupPlugin(testvault.DefaultPluginVersion, sha); err != nil {
		t.Fatal(err)
	}
	for _, s := range c.standbys {
		mountsReached(t, s)
	}
	addrs := make([]string, len(servers))
	for i, s := range servers {
		addrs[i] = s.Addr
	}
	if c.lb, err = testvault.StartProxy(addrs...); err != nil {
		t.Fatal(err)
	}
	return c
}

type flowGrant struct {
	requestID, grantID, leaseID, password string
}

// accessFlowThroughStandbys runs one access flow with real identities, every call made
// through a standby node.
func accessFlowThroughStandbys(t *testing.T, active *testvault.Server, standbys []*testvault.Server) flowGrant {
	t.Helper()
	a, b := standbys[0], standbys[1%len(standbys)]
	requester, err := os.ReadFile(repoFile(t, "testdata/access-requester.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	approver, err := os.ReadFile(repoFile(t, "testdata/access-approver.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Client.Sys().PutPolicy("access-requester", string(requester)); err != nil {
		t.Fatal(err)
	}
	if err := a.Client.Sys().PutPolicy("access-approver", string(approver)); err != nil {
		t.Fatal(err)
	}
	login := func(node *testvault.Server, name string) (*api.Client, string) {
		t.Helper()
		if _, err := node.Client.Logical().Write("auth/userpass/users/"+name, map[string]interface{}{
			"password": name + "-pw-1", "token_policies": "access-requester,access-approver",
		}); err != nil {
			t.Fatal(err)
		}
		c, err := node.Client.Clone()
		if err != nil {
			t.Fatal(err)
		}
		var s *api.Secret
		err = replicated(t, node, "the login of "+name, "invalid username or password", func() (err error) {
			s, err = c.Logical().Write("auth/userpass/login/"+name, map[string]interface{}{"password": name + "-pw-1"})
			return err
		})
		if err != nil || s == nil || s.Auth == nil || s.Auth.EntityID == "" {
			t.Fatalf("login of %s through %s: %v %v", name, node.NodeID, s, err)
		}
		c.SetToken(s.Auth.ClientToken)
		return c, s.Auth.EntityID
	}
	alice, _ := login(a, "alice")
	bob, bobEntity := login(b, "bob")
	if _, err := b.Client.Logical().Write("identity/group", map[string]interface{}{
		"name": "kv-owners", "member_entity_ids": bobEntity,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Client.Logical().Write("apono/roles/flow", map[string]interface{}{
		"resources": "kv/app/db", "ttl": "1h", "approval": "required", "approvers": "group:kv-owners",
	}); err != nil {
		t.Fatal(err)
	}
	r, err := alice.Logical().Write("apono/requests/flow", map[string]interface{}{"justification": "HA"})
	if err != nil || r == nil || r.Data["status"] != "pending" {
		t.Fatalf("request through %s: %v %v", a.NodeID, r, err)
	}
	id, _ := r.Data["request_id"].(string)
	if _, err := alice.Logical().Write("apono/requests/"+id+"/approve", nil); err == nil || !strings.Contains(err.Error(), "self-approval") {
		t.Fatalf("alice approving her own request through %s: %v", a.NodeID, err)
	}
	ap, err := bob.Logical().Write("apono/requests/"+id+"/approve", map[string]interface{}{"reason": "via standby"})
	if err != nil || ap == nil || ap.Data["status"] != "approved" {
		t.Fatalf("approval through standby %s: %v %v", b.NodeID, ap, err)
	}
	g, err := alice.Logical().Write("apono/requests/"+id+"/grant", nil)
	if err != nil || g == nil || g.LeaseID == "" {
		t.Fatalf("pickup through %s: %v %v", a.NodeID, g, err)
	}
	password, _ := g.Data["password"].(string)
	grantID, _ := g.Data["grant_id"].(string)
	t.Logf("access flow through standbys: asked via %s, approved via %s, picked up as grant %s", a.NodeID, b.NodeID, grantID)
	return flowGrant{requestID: id, grantID: grantID, leaseID: g.LeaseID, password: password}
}

// replicated makes a call through a standby that reads what an earlier call wrote.
// Vault's standbys forward every request to the active node, which answers from what it
// wrote. OpenBao's standbys answer requests that only read storage themselves, from
// their own copy of the raft log, which trails the active node's by a moment
// (OpenBao's "horizontal read scalability": eventually consistent): a userpass login
// reads the user there, so a user written a moment ago can be refused as a bad password.
// On OpenBao only, and only on the refusal named, the call is retried for up to 10 s.
func replicated(t *testing.T, node *testvault.Server, what, refusal string, call func() error) error {
	t.Helper()
	began := time.Now()
	for tries := 1; ; tries++ {
		err := call()
		if err == nil || !testvault.IsOpenBao() || !strings.Contains(err.Error(), refusal) || time.Since(began) > 10*time.Second {
			if tries > 1 {
				t.Logf("%s through OpenBao standby %s: %d refusals (%q), then %v, %s after the first try",
					what, node.NodeID, tries-1, refusal, err, time.Since(began).Round(time.Millisecond))
			}
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mountsReached waits until a standby answers through every mount the setup made. An
// OpenBao standby routes each request itself, with the mount table of its own copy of the
// raft log, and mounts an external plugin itself once that copy has the entry: until then
// it answers 404 "no handler for route" or an error of the mount in progress. Vault's
// standbys forward everything, so there the first try passes. Each probe here succeeds
// on a mounted path (an unconfigured plugin's config reads as nothing).
func mountsReached(t *testing.T, node *testvault.Server) {
	t.Helper()
	began := time.Now()
	retries := 0
	probes := []struct {
		path string
		list bool
	}{{"apono/config", false}, {"kv/config", false}, {"auth/userpass/users", true}, {"auth/approle/role", true}}
	for _, p := range probes {
		for {
			var err error
			if p.list {
				_, err = node.Client.Logical().List(p.path)
			} else {
				_, err = node.Client.Logical().Read(p.path)
			}
			if err == nil {
				break
			}
			if time.Since(began) > 30*time.Second {
				t.Fatalf("standby %s still cannot serve %s %s after the mount: %v", node.NodeID, p.path, time.Since(began).Round(time.Millisecond), err)
			}
			retries++
			time.Sleep(50 * time.Millisecond)
		}
	}
	if retries > 0 {
		t.Logf("standby %s served every mount %s after the setup, after %d refusals", node.NodeID, time.Since(began).Round(time.Millisecond), retries)
	}
}

// repoFile is the path of a file of this repository.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	root, err := testvault.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root + "/" + rel
}

type issued struct {
	leaseID, username, password string
	expires                     time.Time
}

// issue writes grants/<role> through c and returns what the lease says.
func issue(t *testing.T, c *api.Client, role string) issued {
	t.Helper()
	sent := time.Now()
	s, err := c.Logical().Write("apono/grants/"+role, map[string]interface{}{"requester": "load@example.com"})
	if err != nil {
		t.Errorf("grant from %s: %v", role, err)
		return issued{}
	}
	g := issued{leaseID: s.LeaseID, expires: sent.Add(time.Duration(s.LeaseDuration) * time.Second)}
	g.username, _ = s.Data["username"].(string)
	g.password, _ = s.Data["password"].(string)
	if g.leaseID == "" || g.username == "" || g.password == "" {
		t.Errorf("grant from %s: no lease or credentials: %v", role, s)
	}
	return g
}

// aponoObjects lists the apono-* users and policies other than the management policy.
func aponoObjects(t *testing.T, c *api.Client) (users, policies []string) {
	t.Helper()
	for _, u := range mustList(t, c, "auth/userpass/users") {
		if strings.HasPrefix(u, "apono-") {
			users = append(users, u)
		}
	}
	all, err := c.Sys().ListPolicies()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		if strings.HasPrefix(p, "apono-") && p != testvault.PolicyName {
			policies = append(policies, p)
		}
	}
	sort.Strings(policies)
	return users, policies
}

// mustList lists path; a missing or empty list is empty.
func mustList(t *testing.T, c *api.Client, path string) []string {
	t.Helper()
	keys, err := testvault.ListKeys(c, path)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}
