package backend

import (
	"errors"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/grants"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/sweep"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi/vaultfake"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// Objects the sweeper must never touch: people, policies Vault ships, and another mount's
// grants (same shape, other prefix).
var (
	foreignPrefix   = "apono-" + mountTag("another-mount-uuid") + "-"
	foreignUsers    = []string{"alice", "apono-admin", foreignPrefix + "0123456789abcdef"}
	foreignPolicies = []string{"default", "apono-management", foreignPrefix + "0123456789abcdef"}
)

// sweepEnv is a configured backend with foreign users and policies in the fake Vault and
// a sweeper clock the test moves.
type sweepEnv struct {
	*testEnv
	clock time.Time
}

func newSweepEnv(t *testing.T) *sweepEnv {
	t.Helper()
	e := &sweepEnv{testEnv: newTestEnv(t), clock: time.Now()}
	e.grantEnv(t)
	e.b.sweeper.Now = func() time.Time { return e.clock }
	for _, u := range foreignUsers {
		e.vault.AddUser("userpass", u)
	}
	for _, p := range foreignPolicies {
		e.vault.AddPolicy(p)
	}
	return e
}

// sweep runs the sweeper job once at the current clock, as the periodic function does.
func (e *sweepEnv) sweep(t *testing.T) error {
	t.Helper()
	return e.b.sweeper.IfDue(e.ctx, e.storage)
}

func (e *sweepEnv) mustSweep(t *testing.T) {
	t.Helper()
	if err := e.sweep(t); err != nil {
		t.Fatalf("sweep: %v", err)
	}
}

func (e *sweepEnv) issue(t *testing.T, ttl string) (*logical.Response, string) {
	t.Helper()
	resp := e.mustOK(t, logical.UpdateOperation, "grants/app", map[string]interface{}{"ttl": ttl})
	return resp, resp.Data["username"].(string)
}

// assertForeignUntouched fails if any user or policy not created by this mount is gone.
func (e *sweepEnv) assertForeignUntouched(t *testing.T) {
	t.Helper()
	for _, u := range foreignUsers {
		if _, ok := e.vault.User("userpass", u); !ok {
			t.Errorf("sweeper deleted foreign user %q", u)
		}
	}
	for _, p := range foreignPolicies {
		if _, ok := e.vault.Policy(p); !ok {
			t.Errorf("sweeper deleted foreign policy %q", p)
		}
	}
}

func (e *sweepEnv) exists(name string) (user, policy, record bool) {
	_, user = e.vault.User("userpass", name)
	_, policy = e.vault.Policy(name)
	id, _ := e.b.grants.IDFromName(name)
	entry, _ := e.storage.Get(e.ctx, store.GrantStoragePrefix+id)
	return user, policy, entry != nil
}

func TestSweeperRemovesEndedGrantsAndKeepsLiveOnes(t *testing.T) {
	e := newSweepEnv(t)
	live, liveName := e.issue(t, "3h")
	ended, endedName := e.issue(t, "10m")
	// A grant whose user is already gone (crash after the user delete, before the record's).
	_, userlessName := e.issue(t, "10m")
	e.vault.Mu.Lock()
	delete(e.vault.Users, "userpass/"+userlessName)
	e.vault.Mu.Unlock()

	// Just past expiry but within the grace: Vault's own revocation goes first.
	e.clock = time.Now().Add(10*time.Minute + sweep.ExpiryGrace/2)
	e.mustSweep(t)
	if u, p, r := e.exists(endedName); !u || !p || !r {
		t.Fatalf("swept within the grace period: user %v policy %v record %v", u, p, r)
	}

	// Vault never revoked it (irrevocable lease, lost lease): the sweeper does.
	e.clock = time.Now().Add(30 * time.Minute)
	e.mustSweep(t)
	for _, name := range []string{endedName, userlessName} {
		if u, p, r := e.exists(name); u || p || r {
			t.Errorf("%s not swept: user %v policy %v record %v", name, u, p, r)
		}
	}
	if u, p, r := e.exists(liveName); !u || !p || !r {
		t.Fatalf("live grant touched: user %v policy %v record %v", u, p, r)
	}
	e.assertForeignUntouched(t)

	// Vault's late revocation of the swept lease still succeeds, and the live one revokes.
	if _, err := e.revoke(t, ended.Secret); err != nil {
		t.Fatalf("revoke after sweep: %v", err)
	}
	if _, err := e.revoke(t, live.Secret); err != nil {
		t.Fatal(err)
	}
	if u, p, r := e.exists(liveName); u || p || r {
		t.Fatalf("live grant not revoked: user %v policy %v record %v", u, p, r)
	}
}

func TestSweeperKeepsARenewedGrant(t *testing.T) {
	e := newSweepEnv(t)
	resp, name := e.issue(t, "10m")
	secret := resp.Secret
	secret.IssueTime = time.Now()
	secret.Increment = 2 * time.Hour
	r, err := e.b.HandleRequest(e.ctx, &logical.Request{Operation: logical.RenewOperation, Storage: e.storage, Secret: secret})
	if err != nil || r.IsError() {
		t.Fatalf("renew: %v %#v", err, r)
	}
	e.clock = time.Now().Add(time.Hour)
	e.mustSweep(t)
	if u, p, r := e.exists(name); !u || !p || !r {
		t.Fatalf("renewed grant swept at its original expiry: user %v policy %v record %v", u, p, r)
	}
}

func TestSweeperRemovesRecordlessObjectsOnlyOnSecondSighting(t *testing.T) {
	e := newSweepEnv(t)
	_, liveName := e.issue(t, "3h")
	orphan := e.b.grants.ObjectName("00000000000000aa")         // user and policy, no record
	policyOnly := e.b.grants.ObjectName("00000000000000bb")     // policy, no user, no record
	userOtherMount := e.b.grants.ObjectName("00000000000000cc") // in a userpass mount not configured
	e.vault.AddUser("userpass", orphan)
	e.vault.AddPolicy(orphan)
	e.vault.AddPolicy(policyOnly)
	e.vault.AddUser("userpass-old", userOtherMount)

	start := time.Now()
	e.clock = start
	e.mustSweep(t) // first sighting
	if u, p, _ := e.exists(orphan); !u || !p {
		t.Fatal("record-less user deleted on first sighting")
	}
	e.clock = start.Add(walRollbackMinAge + time.Second)
	e.mustSweep(t) // not due yet: the interval has not passed
	if u, _, _ := e.exists(orphan); !u {
		t.Fatal("sweeper ran before its interval")
	}
	e.clock = start.Add(sweep.DefaultInterval)
	e.mustSweep(t)
	if u, p, _ := e.exists(orphan); u || p {
		t.Fatalf("record-less orphan not swept on second sighting: user %v policy %v", u, p)
	}
	if _, ok := e.vault.Policy(policyOnly); ok {
		t.Fatal("record-less policy (found by LIST sys/policies/acl) not swept")
	}
	if _, ok := e.vault.User("userpass-old", userOtherMount); !ok {
		t.Fatal("user of an unconfigured userpass mount touched")
	}
	if u, p, r := e.exists(liveName); !u || !p || !r {
		t.Fatalf("live grant touched: user %v policy %v record %v", u, p, r)
	}
	e.assertForeignUntouched(t)
}

// With the seed's policy LIST sys/policies/acl is denied: a policy with no user and no
// record cannot be found (documented), but users and their same-name policies still are,
// and the sweeper does not fail or try the LIST.
func TestSweeperWithSeedPolicy(t *testing.T) {
	e := newSweepEnv(t)
	e.vault.CapRules = seedPolicyRules(t, "userpass")
	orphan := e.b.grants.ObjectName("00000000000000aa")
	policyOnly := e.b.grants.ObjectName("00000000000000bb")
	e.vault.AddUser("userpass", orphan)
	e.vault.AddPolicy(orphan)
	e.vault.AddPolicy(policyOnly)

	e.mustSweep(t)
	e.clock = e.clock.Add(sweep.DefaultInterval)
	e.mustSweep(t)
	if u, p, _ := e.exists(orphan); u || p {
		t.Fatalf("orphan not swept under the seed policy: user %v policy %v", u, p)
	}
	if _, ok := e.vault.Policy(policyOnly); !ok {
		t.Fatal("policy-only orphan found although LIST sys/policies/acl is denied: the fake is not enforcing the seed policy")
	}
	if n := e.vault.CallCount("List"); n != 0 {
		t.Fatalf("LIST sys/policies/acl tried %d times although capabilities-self says no", n)
	}
	e.assertForeignUntouched(t)
}

// A crash after the user, before the record: the WAL entry is still there, so the sweeper
// leaves the objects to WALRollback however many times it sees them.
func TestSweeperLeavesPendingWALToRollback(t *testing.T) {
	e := newSweepEnv(t)
	name := e.b.grants.ObjectName("00000000000000dd")
	objs := grants.Objects{GrantID: "00000000000000dd", Username: name, Policy: name, UserpassMount: "userpass"}
	if _, err := framework.PutWAL(e.ctx, e.storage, grants.WALKind, &objs); err != nil {
		t.Fatal(err)
	}
	e.vault.AddPolicy(name)
	e.vault.AddUser("userpass", name)
	for i := 0; i < 3; i++ {
		e.mustSweep(t)
		e.clock = e.clock.Add(sweep.DefaultInterval)
	}
	if u, p, _ := e.exists(name); !u || !p {
		t.Fatalf("sweeper deleted the objects of a pending WAL: user %v policy %v", u, p)
	}
	e.rollback(t)
	if u, p, _ := e.exists(name); u || p {
		t.Fatalf("WAL rollback did not remove them: user %v policy %v", u, p)
	}
	if wals, _ := framework.ListWAL(e.ctx, e.storage); len(wals) != 0 {
		t.Fatalf("WAL left: %v", wals)
	}
}

// An undecodable grant WAL entry: nothing record-less may be deleted, since an issue in
// flight could not be told apart.
func TestSweeperDeletesNothingRecordlessWithUnreadableWAL(t *testing.T) {
	e := newSweepEnv(t)
	if _, err := framework.PutWAL(e.ctx, e.storage, grants.WALKind, map[string]interface{}{"grant_id": "x"}); err != nil {
		t.Fatal(err)
	}
	orphan := e.b.grants.ObjectName("00000000000000aa")
	e.vault.AddUser("userpass", orphan)
	if err := e.sweep(t); err == nil {
		t.Fatal("sweep with an undecodable WAL entry reported no error")
	}
	e.clock = e.clock.Add(sweep.DefaultInterval)
	_ = e.sweep(t)
	if u, _, _ := e.exists(orphan); !u {
		t.Fatal("record-less user deleted although the WAL could not be read")
	}
}

func TestSweeperInjectedFailures(t *testing.T) {
	t.Run("ListUsers fails: expired records are still swept", func(t *testing.T) {
		e := newSweepEnv(t)
		_, name := e.issue(t, "10m")
		e.vault.Fail("ListUsers", vaultfake.ErrDown)
		e.clock = time.Now().Add(time.Hour)
		if err := e.sweep(t); err == nil || !strings.Contains(err.Error(), "listing users") {
			t.Fatalf("want the ListUsers error, got %v", err)
		}
		if u, p, r := e.exists(name); u || p || r {
			t.Fatalf("expired grant not swept: user %v policy %v record %v", u, p, r)
		}
	})
	t.Run("DeletePolicy fails: record kept, next sweep finishes", func(t *testing.T) {
		e := newSweepEnv(t)
		_, name := e.issue(t, "10m")
		e.vault.Fail("DeletePolicy", vaultfake.ErrDown)
		e.clock = time.Now().Add(time.Hour)
		if err := e.sweep(t); err == nil {
			t.Fatal("sweep hid a failed policy delete")
		}
		if u, p, r := e.exists(name); !u || !p || !r {
			t.Fatalf("partial sweep dropped something it must retry: user %v policy %v record %v", u, p, r)
		}
		e.vault.Fail("DeletePolicy", nil)
		e.clock = e.clock.Add(sweep.DefaultInterval)
		e.mustSweep(t)
		if u, p, r := e.exists(name); u || p || r {
			t.Fatalf("retry did not finish: user %v policy %v record %v", u, p, r)
		}
	})
	t.Run("DeleteUser fails for a record-less orphan: suspected again and removed later", func(t *testing.T) {
		e := newSweepEnv(t)
		orphan := e.b.grants.ObjectName("00000000000000aa")
		e.vault.AddUser("userpass", orphan)
		e.mustSweep(t)
		e.vault.Fail("DeleteUser", vaultfake.ErrDown)
		e.clock = e.clock.Add(sweep.DefaultInterval)
		if err := e.sweep(t); err == nil {
			t.Fatal("sweep hid a failed user delete")
		}
		e.vault.Fail("DeleteUser", nil)
		e.clock = e.clock.Add(sweep.DefaultInterval)
		e.mustSweep(t)
		if u, _, _ := e.exists(orphan); u {
			t.Fatal("orphan not removed after the failure cleared")
		}
	})
	t.Run("capabilities-self fails: sweep still works without policy listing", func(t *testing.T) {
		e := newSweepEnv(t)
		_, name := e.issue(t, "10m")
		e.vault.Fail("CapabilitiesSelf", vaultfake.ErrDown)
		e.clock = time.Now().Add(time.Hour)
		e.mustSweep(t)
		if u, p, r := e.exists(name); u || p || r {
			t.Fatalf("expired grant not swept: user %v policy %v record %v", u, p, r)
		}
	})
	t.Run("login fails: error, nothing deleted", func(t *testing.T) {
		e := newSweepEnv(t)
		_, name := e.issue(t, "10m")
		e.b.resetClient()
		e.vault.LoginErr = errors.New("secret_id rotated")
		e.clock = time.Now().Add(time.Hour)
		if err := e.sweep(t); err == nil || !strings.Contains(err.Error(), "secret_id rotated") {
			t.Fatalf("want the login error, got %v", err)
		}
		if u, p, r := e.exists(name); !u || !p || !r {
			t.Fatalf("something deleted without a client: user %v policy %v record %v", u, p, r)
		}
	})
}

// Through Vault's periodic call: the sweeper runs on the active node and not on a
// performance standby, and does nothing before config exists.
func TestSweeperRunsFromPeriodicOnActiveNodeOnly(t *testing.T) {
	periodic := func(e *testEnv) {
		// Errors of other periodic jobs are not this test's concern; the outcome is.
		_, _ = e.b.HandleRequest(e.ctx, &logical.Request{Operation: logical.RollbackOperation, Storage: e.storage})
	}

	unconfigured := newTestEnv(t)
	periodic(unconfigured)
	if unconfigured.vault.Logins != 0 {
		t.Fatal("the sweeper tried to log in before config exists")
	}

	e := newSweepEnv(t)
	_, name := e.issue(t, "10m")
	e.clock = time.Now().Add(time.Hour)
	sys := e.b.System().(*identitySystemView)
	sys.ReplicationStateVal = consts.ReplicationPerformanceStandby
	periodic(e.testEnv)
	if u, _, _ := e.exists(name); !u {
		t.Fatal("a performance standby swept")
	}
	sys.ReplicationStateVal = 0
	periodic(e.testEnv)
	if u, p, r := e.exists(name); u || p || r {
		t.Fatalf("the active node's periodic run did not sweep: user %v policy %v record %v", u, p, r)
	}
}

func TestGrantIDFromNameAcceptsOnlyThisMountsNames(t *testing.T) {
	e := newTestEnv(t)
	p := e.b.namePrefix
	cases := map[string]bool{
		p + "0123456789abcdef":             true,
		p + "0123456789ABCDEF":             false,
		p + "0123456789abcde":              false,
		p + "0123456789abcdef0":            false,
		p + "0123456789abcdef/x":           false,
		foreignPrefix + "0123456789abcdef": false,
		"apono-0123456789abcdef":           false,
		"alice":                            false,
		"":                                 false,
	}
	var wrong []string
	for name, want := range cases {
		if _, got := e.b.grants.IDFromName(name); got != want {
			wrong = append(wrong, name)
		}
	}
	sort.Strings(wrong)
	if !reflect.DeepEqual(wrong, []string(nil)) {
		t.Fatalf("misclassified: %v", wrong)
	}
}

// An issue writes a grant's index entries beside its record. A crash that stored the
// record and every object but not the entries (and no lease: the response never went
// out) leaves the WAL entry; its rollback keeps the grant and writes the entries, so the
// grant is listed and the sweeper ends it at its expiry.
func TestRollbackIndexesAGrantWhoseEntriesACrashCutShort(t *testing.T) {
	e := newSweepEnv(t)
	resp, name := e.issue(t, "10m")
	id := resp.Data["grant_id"].(string)
	rec, err := store.GetGrant(e.ctx, e.storage, id)
	if err != nil || rec == nil {
		t.Fatalf("record: %v %v", rec, err)
	}
	if err := e.b.idx.Apply(e.ctx, e.storage, store.GrantEntries(rec), false); err != nil {
		t.Fatal(err)
	}
	objs := grants.Objects{GrantID: id, Username: name, Policy: name, UserpassMount: "userpass", Entity: rec.EntityName}
	if _, err := framework.PutWAL(e.ctx, e.storage, grants.WALKind, &objs); err != nil {
		t.Fatal(err)
	}
	listed := func() bool {
		keys, _ := e.mustOK(t, logical.ListOperation, "grants", nil).Data["keys"].([]string)
		return slices.Contains(keys, rec.Role+"/"+id)
	}
	if listed() {
		t.Fatal("setup: the grant is listed without its index entries")
	}
	e.rollback(t)
	if u, p, r := e.exists(name); !u || !p || !r {
		t.Fatalf("the rollback removed a finished grant: user %v policy %v record %v", u, p, r)
	}
	if !listed() {
		t.Fatal("after the rollback the grant is still not listed: its index entries were not written")
	}
	e.clock = time.Now().Add(time.Hour)
	e.mustSweep(t)
	if u, p, r := e.exists(name); u || p || r {
		t.Fatalf("the sweeper did not end the expired grant: user %v policy %v record %v", u, p, r)
	}
}
