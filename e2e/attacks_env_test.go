package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// The attack tests (attacks_test.go) run on a mount of their own in the shared Vault,
// apono-attacks, with the access-flow people (flows_env_test.go): their tokens and
// entities, given the README's policies for this mount as entity policies. The mount
// logs in with an AppRole of its own whose policy is the management policy plus the
// identity additions (honest end times, grant entities, approver_max_token_age).

const attacksMount = "apono-attacks"

type attacksFixture struct {
	*flowsFixture
	roleID string
	// prefix starts the name of every user, policy and entity the mount creates.
	prefix string
}

var (
	attacksOnce sync.Once
	attacksFix  *attacksFixture
	attacksErr  error
)

func attacksEnv(t *testing.T) *attacksFixture {
	t.Helper()
	f := flowsEnv(t)
	attacksOnce.Do(func() { attacksFix, attacksErr = newAttacksFixture(t, f) })
	if attacksErr != nil {
		t.Fatal("attack fixture: ", attacksErr)
	}
	return attacksFix
}

func newAttacksFixture(t *testing.T, f *flowsFixture) (*attacksFixture, error) {
	e := f.e
	a := &attacksFixture{flowsFixture: f}
	var failed error
	must := func(args ...string) string {
		if failed != nil {
			return ""
		}
		out, _, err := e.s.CLI("", args...)
		failed = err
		return out
	}
	mustStdin := func(stdin string, args ...string) {
		if failed == nil {
			_, _, failed = e.s.CLIWithStdin("", stdin, args...)
		}
	}
	mustStdin(managementPolicy(t)+"\n"+identityAdditions(t), "policy", "write", "apono-management-attacks", "-")
	must("write", "auth/approle/role/apono-attacks", "token_policies=apono-management-attacks", "token_no_default_policy=true",
		"token_ttl=60m", "token_max_ttl=4h")
	a.roleID = strings.TrimSpace(must("read", "-field=role_id", "auth/approle/role/apono-attacks/role-id"))
	a.enableMount(t, attacksMount, &failed)
	for name, file := range map[string]string{"attacks-requester": "access-requester.hcl", "attacks-approver": "access-approver.hcl"} {
		mustStdin(policyForMount(t, file, attacksMount), "policy", "write", name, "-")
	}
	for _, p := range f.people {
		must("write", "identity/entity/id/"+p.entityID, "policies=attacks-requester,attacks-approver")
	}
	if failed != nil {
		return nil, failed
	}
	prefix, err := mountPrefix(e, attacksMount)
	a.prefix = prefix
	return a, err
}

// enableMount enables and configures another mount of the plugin with the attack
// fixture's AppRole and the access-flow owners.
func (a *attacksFixture) enableMount(t *testing.T, mount string, failed *error) {
	e := a.e
	for _, args := range [][]string{
		{"secrets", "enable", "-path=" + mount, "-plugin-version=" + e.setup.Version, testvault.PluginName},
	} {
		if *failed == nil {
			_, _, *failed = e.s.CLI("", args...)
		}
	}
	if *failed != nil {
		return
	}
	secretID, _, err := e.s.CLI("", "write", "-f", "-field=secret_id", "auth/approle/role/apono-attacks/secret-id")
	if err != nil {
		*failed = err
		return
	}
	_, _, *failed = e.s.CLI("", "write", mount+"/config", "vault_addr="+e.s.URL(), "role_id="+a.roleID,
		"secret_id="+strings.TrimSpace(secretID), "owner_metadata_key=owner", "integration_owner=security")
}

// mountPrefix is "apono-<tag>-", how the plugin mounted at mount names what it creates:
// the tag is the first 8 hex digits of the SHA-256 of the mount's UUID.
func mountPrefix(e *env, mount string) (string, error) {
	out, _, err := e.s.CLI("", "secrets", "list", "-format=json", "-detailed")
	if err != nil {
		return "", err
	}
	var mounts map[string]struct {
		UUID string `json:"uuid"`
	}
	if err := json.Unmarshal([]byte(out), &mounts); err != nil {
		return "", err
	}
	m, ok := mounts[mount+"/"]
	if !ok || m.UUID == "" {
		return "", fmt.Errorf("mount %s has no uuid in %s", mount, out)
	}
	sum := sha256.Sum256([]byte(m.UUID))
	return "apono-" + hex.EncodeToString(sum[:])[:8] + "-", nil
}

// created lists the users, policies and identity entities whose names start with prefix:
// what a mount has made in Vault.
func (e *env) created(t *testing.T, prefix string) []string {
	t.Helper()
	users, policies := e.aponoObjects(t)
	var out []string
	for _, n := range append(users, policies...) {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	for _, n := range e.listAll(t, "identity/entity/name") {
		if strings.HasPrefix(n, prefix) {
			out = append(out, "entity "+n)
		}
	}
	sort.Strings(out)
	return out
}

// nothingCreated fails the test if the mount made anything in Vault since before.
func (a *attacksFixture) nothingCreated(t *testing.T, before []string, what string) {
	t.Helper()
	if after := a.e.created(t, a.prefix); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("%s made objects in Vault: before %v, after %v", what, before, after)
	}
}

// person logs a new userpass user in (token_policies policies), names the entity the
// login made after the user, and returns them.
func (e *env) person(t *testing.T, name string, policies ...string) *person {
	t.Helper()
	p := &person{name: name, password: "pw-" + name + "-Zq81"}
	e.root(t, "write", "auth/userpass/users/"+name, "password="+p.password, "token_policies="+strings.Join(policies, ","))
	e.loginPerson(t, p)
	e.root(t, "write", "identity/entity/id/"+p.entityID, "name="+name)
	return p
}

// loginPerson logs p in again and keeps the new token.
func (e *env) loginPerson(t *testing.T, p *person) {
	t.Helper()
	v := e.jsonOut(t, "", "login", "-no-store", "-method=userpass", "username="+p.name, "password="+p.password)
	auth, _ := v["auth"].(map[string]interface{})
	p.token, _ = auth["client_token"].(string)
	p.entityID, _ = auth["entity_id"].(string)
	if p.token == "" || p.entityID == "" {
		t.Fatalf("login of %s gave no token or entity: %v", p.name, v)
	}
}
