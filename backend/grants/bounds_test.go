package grants

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi/vaultfake"
	"github.com/apono-io/vault-plugin-apono/internal/keylock"
	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	testGrantID = "0123456789abcdef"
	testPrefix  = "apono-t-"
)

// boundsNow has half a second: bounds are whole seconds.
var boundsNow = time.Date(2026, 12, 6, 10, 0, 0, 500_000_000, time.UTC)

// boundsEnv is a Grants on a fake Vault with PKI, SSH and database mounts whose roles
// answer ttl and max_ttl as Vault's API client decodes them: json.Number seconds or
// duration strings.
func boundsEnv(t *testing.T) (*Grants, *vaultfake.Vault) {
	t.Helper()
	v := vaultfake.New()
	v.MountTable["pki/"] = vaultapi.MountInfo{Type: "pki"}
	v.MountTable["ssh/"] = vaultapi.MountInfo{Type: "ssh"}
	v.MountTable["database/"] = vaultapi.MountInfo{Type: "database"}
	v.Tree = vaultfake.NewTree().
		Role("pki", "web", vaultfake.Role{Data: map[string]interface{}{"ttl": json.Number("600"), "max_ttl": json.Number("3600")}}).
		Role("pki", "long", vaultfake.Role{Data: map[string]interface{}{"max_ttl": "720h"}}).
		Role("pki", "nomax", vaultfake.Role{Data: map[string]interface{}{}}).
		Role("ssh", "ops", vaultfake.Role{KeyType: "ca", Data: map[string]interface{}{"ttl": json.Number("1800"), "max_ttl": "2h"}}).
		Role("ssh", "capped", vaultfake.Role{KeyType: "ca", Data: map[string]interface{}{"ttl": "3h", "max_ttl": json.Number("3600")}}).
		Role("ssh", "plain", vaultfake.Role{KeyType: "ca", Data: map[string]interface{}{"ttl": json.Number("0"), "max_ttl": json.Number("0")}}).
		Role("ssh", "shortmax", vaultfake.Role{KeyType: "ca", Data: map[string]interface{}{"max_ttl": "20m"}}).
		Role("ssh", "dev", vaultfake.Role{KeyType: "ca", Data: map[string]interface{}{"ttl": "10m"}}).
		Role("ssh", "tiny", vaultfake.Role{KeyType: "ca", Data: map[string]interface{}{"ttl": "10s"}}).
		Role("ssh", "bad", vaultfake.Role{KeyType: "ca", Data: map[string]interface{}{"ttl": "soon"}}).
		Role("ssh", "otp", vaultfake.Role{KeyType: "otp"}).
		Role("database", "ro", vaultfake.Role{Data: map[string]interface{}{"max_ttl": json.Number("60")}})
	g := New(Deps{
		Prefix:   testPrefix,
		Logger:   func() hclog.Logger { return hclog.NewNullLogger() },
		Locks:    &keylock.Set{},
		Index:    store.NewIndexes(),
		Caps:     &vaultapi.CapabilityCache{},
		OwnMount: func() string { return "apono/" },
	})
	return g, v
}

func boundsRefs(t *testing.T, v *vaultfake.Vault, names ...string) []resource.Ref {
	t.Helper()
	var refs []resource.Ref
	for _, n := range names {
		ref, err := resource.Resolve(n, v.MountTable, resource.Options{OwnMount: "apono/"})
		if err != nil {
			t.Fatalf("Resolve(%q): %v", n, err)
		}
		refs = append(refs, ref)
	}
	return refs
}

type testRule struct {
	Capabilities       []string                 `json:"capabilities"`
	AllowedParameters  map[string][]interface{} `json:"allowed_parameters"`
	RequiredParameters []string                 `json:"required_parameters"`
	DeniedParameters   map[string][]interface{} `json:"denied_parameters"`
}

// policyRules parses a rendered policy back, refusing any field it does not know.
func policyRules(t *testing.T, rules string) map[string]testRule {
	t.Helper()
	var top struct {
		Path map[string]testRule `json:"path"`
	}
	dec := json.NewDecoder(strings.NewReader(rules))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&top); err != nil || top.Path == nil {
		t.Fatalf("policy %s does not parse back: %v", rules, err)
	}
	return top.Path
}

func pkiRule(notAfter string) testRule {
	return testRule{
		Capabilities:       []string{"update"},
		AllowedParameters:  map[string][]interface{}{"*": {}, "not_after": {notAfter}},
		RequiredParameters: []string{"not_after"},
		DeniedParameters:   map[string][]interface{}{"ttl": {}},
	}
}

func sshSignRule(ttl string) testRule {
	return testRule{
		Capabilities:       []string{"update"},
		AllowedParameters:  map[string][]interface{}{"*": {}, "ttl": {ttl}},
		RequiredParameters: []string{"ttl"},
	}
}

// A PKI certificate's not_after is the grant's end, or the PKI role's max_ttl from now
// when that is sooner, in whole seconds; nothing is left to narrow later.
func TestBoundedPolicyPKINotAfter(t *testing.T) {
	cases := []struct {
		resource string
		grant    time.Duration
		want     string
	}{
		{"pki/issue/web", 4 * time.Hour, "2026-12-06T11:00:00Z"},   // max_ttl 1h (seconds) sooner
		{"pki/sign/web", 30 * time.Minute, "2026-12-06T10:30:00Z"}, // the grant sooner
		{"pki/issue/long", 4 * time.Hour, "2026-12-06T14:00:00Z"},  // max_ttl 720h (a string) later
		{"pki/issue/nomax", 4 * time.Hour, "2026-12-06T14:00:00Z"}, // no max_ttl
	}
	for _, tc := range cases {
		t.Run(tc.resource+"/"+tc.grant.String(), func(t *testing.T) {
			g, v := boundsEnv(t)
			refs := boundsRefs(t, v, tc.resource)
			b, err := g.BoundedPolicy(context.Background(), v.Client(), refs, "issue", testPrefix+testGrantID, boundsNow, boundsNow.Add(tc.grant))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := time.Parse(time.RFC3339, tc.want)
			if got := b.Bounds.NotAfter[tc.resource]; !got.Equal(want) || len(b.Bounds.NotAfter) != 1 || len(b.Bounds.SSHTTL) != 0 {
				t.Fatalf("bounds %+v, want not_after %s", b.Bounds, want)
			}
			if got, want := policyRules(t, b.Rules), map[string]testRule{tc.resource: pkiRule(tc.want)}; !reflect.DeepEqual(got, want) {
				t.Fatalf("rules %+v\nwant %+v", got, want)
			}
			wantWarn := []string{tc.resource + ": send not_after=" + tc.want + " (the grant's policy takes no other value; ttl is refused)"}
			if !reflect.DeepEqual(b.Warnings, wantWarn) {
				t.Fatalf("warnings %q, want %q", b.Warnings, wantWarn)
			}
			if b.Deadline != nil {
				t.Fatalf("a PKI grant has an SSH signing deadline: %+v", b.Deadline)
			}
			if _, reads, _ := v.Tree.Counts(); reads != 1 {
				t.Fatalf("%d role reads, want 1", reads)
			}
		})
	}
}

// An SSH certificate's ttl is the role's ttl (an hour when unset), capped by its max_ttl
// and by half of what the grant leaves after the margin; signing ends that ttl plus the
// margin before the grant does, and the narrowed policy has no sign rule.
func TestBoundedPolicySSHTTL(t *testing.T) {
	cases := []struct {
		role    string
		grant   time.Duration
		wantTTL time.Duration
	}{
		{"ops", 4 * time.Hour, 30 * time.Minute},                               // the role's ttl
		{"capped", 8 * time.Hour, time.Hour},                                   // ttl 3h capped by max_ttl 1h
		{"plain", 8 * time.Hour, DefaultSSHSignTTL},                            // ttl 0: the default
		{"shortmax", 8 * time.Hour, 20 * time.Minute},                          // the default capped by max_ttl
		{"ops", 61*time.Minute + time.Second, 29*time.Minute + 30*time.Second}, // (61m1s-2m)/2, whole seconds
		{"ops", time.Hour, 29 * time.Minute},                                   // (60m-2m)/2
		{"ops", 3 * time.Minute, MinSSHSignTTL},                                // (3m-2m)/2 = 30s: just enough
	}
	for _, tc := range cases {
		t.Run(tc.role+"/"+tc.grant.String(), func(t *testing.T) {
			g, v := boundsEnv(t)
			name := "ssh/sign/" + tc.role
			refs := boundsRefs(t, v, name, "ssh/creds/otp")
			end := boundsNow.Add(tc.grant)
			policy := testPrefix + testGrantID
			b, err := g.BoundedPolicy(context.Background(), v.Client(), refs, "ssh", policy, boundsNow, end)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(b.Bounds.SSHTTL, map[string]time.Duration{name: tc.wantTTL}) || len(b.Bounds.NotAfter) != 0 {
				t.Fatalf("bounds %+v, want ttl %s", b.Bounds, tc.wantTTL)
			}
			ttlValue := resource.SSHTTLValue(tc.wantTTL)
			if want := map[string]testRule{name: sshSignRule(ttlValue), "ssh/creds/otp": {Capabilities: []string{"update"}}}; !reflect.DeepEqual(policyRules(t, b.Rules), want) {
				t.Fatalf("rules %s\nwant %+v", b.Rules, want)
			}
			at := end.Add(-tc.wantTTL - SignDeadlineMargin)
			if b.Deadline == nil || !b.Deadline.At.Equal(at) || b.Deadline.Policy != policy || b.Deadline.GrantID != "" {
				t.Fatalf("deadline %+v, want at %s for policy %s", b.Deadline, at, policy)
			}
			// Signing lasts at least as long as the certificates it makes, and the last one
			// ends a margin before the grant.
			if at.Sub(boundsNow) < tc.wantTTL || !at.Add(tc.wantTTL+SignDeadlineMargin).Equal(end) {
				t.Fatalf("signing ends at %s: the grant runs %s to %s with ttl %s", at, boundsNow, end, tc.wantTTL)
			}
			if want := map[string]testRule{"ssh/creds/otp": {Capabilities: []string{"update"}}}; !reflect.DeepEqual(policyRules(t, b.Deadline.Rules), want) {
				t.Fatalf("narrowed rules %s\nwant %+v", b.Deadline.Rules, want)
			}
			wantWarn := []string{name + ": send ttl=" + ttlValue + "; signing ends at " + at.UTC().Format(time.RFC3339) + " so that no certificate outlives the grant"}
			if !reflect.DeepEqual(b.Warnings, wantWarn) {
				t.Fatalf("warnings %q, want %q", b.Warnings, wantWarn)
			}
			// The OTP role is never read: its credential is a lease, not a certificate.
			if !reflect.DeepEqual(v.Tree.Reads, []string{"ssh/roles/" + tc.role}) {
				t.Fatalf("role reads %v", v.Tree.Reads)
			}
		})
	}
}

// A grant too short for a certificate of MinSSHSignTTL that ends before it (or a role
// whose ttl is below it) signs nothing: no sign rule, no deadline, a warning.
func TestBoundedPolicySSHTooShort(t *testing.T) {
	cases := []struct {
		role  string
		grant time.Duration
	}{
		{"ops", 3*time.Minute - 2*time.Second}, // (2m58s-2m)/2 = 29s
		{"ops", time.Minute},                   // less than the margin
		{"tiny", 8 * time.Hour},                // the role's ttl, 10s
	}
	for _, tc := range cases {
		t.Run(tc.role+"/"+tc.grant.String(), func(t *testing.T) {
			g, v := boundsEnv(t)
			name := "ssh/sign/" + tc.role
			b, err := g.BoundedPolicy(context.Background(), v.Client(), boundsRefs(t, v, name), "ssh", testPrefix+testGrantID, boundsNow, boundsNow.Add(tc.grant))
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Bounds.SSHTTL) != 0 || b.Deadline != nil || b.Rules != `{"path":{}}` {
				t.Fatalf("bounds %+v, deadline %+v, rules %s; want no signing", b.Bounds, b.Deadline, b.Rules)
			}
			wantWarn := []string{name + ": the grant is too short to sign SSH certificates that end before it does; it signs none"}
			if tc.role == "tiny" {
				wantWarn = []string{name + ": the SSH role's ttl or max_ttl is under 30s; the grant signs no certificates"}
			}
			if !reflect.DeepEqual(b.Warnings, wantWarn) {
				t.Fatalf("warnings %q, want %q", b.Warnings, wantWarn)
			}
		})
	}
}

// Several sign roles: signing ends at the earliest of their deadlines, and the narrowed
// policy loses every sign rule and keeps the rest.
func TestBoundedPolicySSHEarliestDeadline(t *testing.T) {
	g, v := boundsEnv(t)
	end := boundsNow.Add(4 * time.Hour)
	refs := boundsRefs(t, v, "ssh/sign/dev", "ssh/sign/ops", "ssh/creds/otp")
	b, err := g.BoundedPolicy(context.Background(), v.Client(), refs, "ssh", "p", boundsNow, end)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]time.Duration{"ssh/sign/dev": 10 * time.Minute, "ssh/sign/ops": 30 * time.Minute}; !reflect.DeepEqual(b.Bounds.SSHTTL, want) {
		t.Fatalf("ttls %v, want %v", b.Bounds.SSHTTL, want)
	}
	if at := end.Add(-32 * time.Minute); b.Deadline == nil || !b.Deadline.At.Equal(at) {
		t.Fatalf("deadline %+v, want at %s (ops: 30m + margin)", b.Deadline, at)
	}
	want := map[string]testRule{"ssh/sign/dev": sshSignRule("600s"), "ssh/sign/ops": sshSignRule("1800s"), "ssh/creds/otp": {Capabilities: []string{"update"}}}
	if got := policyRules(t, b.Rules); !reflect.DeepEqual(got, want) {
		t.Fatalf("rules %+v\nwant %+v", got, want)
	}
	if got, want := policyRules(t, b.Deadline.Rules), map[string]testRule{"ssh/creds/otp": {Capabilities: []string{"update"}}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("narrowed rules %+v\nwant %+v", got, want)
	}
	if len(b.Warnings) != 2 {
		t.Fatalf("warnings %q, want one per sign role", b.Warnings)
	}
}

// Database resources read no role and get no bounds.
func TestBoundedPolicyDatabaseReadsNoRole(t *testing.T) {
	g, v := boundsEnv(t)
	b, err := g.BoundedPolicy(context.Background(), v.Client(), boundsRefs(t, v, "database/creds/ro"), "creds", "p", boundsNow, boundsNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if b.Rules != `{"path":{"database/creds/ro":{"capabilities":["read"]}}}` || b.Deadline != nil || len(b.Warnings) != 0 ||
		len(b.Bounds.NotAfter) != 0 || len(b.Bounds.SSHTTL) != 0 {
		t.Fatalf("got %+v", b)
	}
	if lists, reads, _ := v.Tree.Counts(); lists != 0 || reads != 0 {
		t.Fatalf("%d lists and %d reads, want none", lists, reads)
	}
}

func TestBoundedPolicyRoleErrors(t *testing.T) {
	cases := []struct {
		resource, permission string
		deny                 string
		wantErr              string
	}{
		{"pki/issue/nope", "issue", "", `pki role "nope" does not exist on pki/`},
		{"ssh/sign/nope", "ssh", "", `ssh role "nope" does not exist on ssh/`},
		{"ssh/sign/bad", "ssh", "", `ssh role "bad": ttl:`},
		{"ssh/sign/ops", "ssh", "ssh/roles/", "reading ssh role \"ops\" (the management policy needs read on ssh/roles/*)"},
		{"pki/issue/web", "issue", "pki/roles/web", "the management policy needs read on pki/roles/*"},
	}
	for _, tc := range cases {
		g, v := boundsEnv(t)
		if tc.deny != "" {
			v.Tree.Denied = []string{tc.deny}
		}
		b, err := g.BoundedPolicy(context.Background(), v.Client(), boundsRefs(t, v, tc.resource), tc.permission, "p", boundsNow, boundsNow.Add(time.Hour))
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) || b != nil {
			t.Errorf("%s: %+v, %v; want an error containing %q", tc.resource, b, err, tc.wantErr)
		}
	}
}

func storeTestGrant(t *testing.T, s logical.Storage, id string) {
	t.Helper()
	rec := &access.Grant{ID: id, Role: "r", Requester: "alice", Resources: []string{"ssh/sign/ops"}, Permission: "ssh",
		Username: testPrefix + id, Policy: testPrefix + id, UserpassMount: "userpass",
		IssuedAt: boundsNow.Add(-time.Hour), ExpiresAt: time.Now().Add(time.Hour), MaxExpiresAt: time.Now().Add(time.Hour)}
	if err := store.PutGrant(context.Background(), s, rec); err != nil {
		t.Fatal(err)
	}
}

func getDeadline(t *testing.T, s logical.Storage, id string) *SignDeadline {
	t.Helper()
	e, err := s.Get(context.Background(), SignDeadlinePrefix+id)
	if err != nil {
		t.Fatal(err)
	}
	if e == nil {
		return nil
	}
	var d SignDeadline
	if err := e.DecodeJSON(&d); err != nil {
		t.Fatal(err)
	}
	return &d
}

// A due deadline of a live grant narrows its policy and goes; one whose grant is gone
// goes without writing anything (its policy is deleted); one not yet due stays.
func TestEndDueSigning(t *testing.T) {
	ctx := context.Background()
	g, v := boundsEnv(t)
	s := &logical.InmemStorage{}
	const (
		due     = "000000000000000a" // due a second ago, live
		dueNow  = "000000000000000b" // due this instant, live
		gone    = "000000000000000c" // due, its grant gone
		notYet  = "000000000000000d" // due in a second, live
		wide    = `{"path":{"ssh/sign/ops":{"capabilities":["update"]}}}`
		narrowd = `{"path":{"ssh/creds/otp":{"capabilities":["update"]}}}`
	)
	at := map[string]time.Time{due: boundsNow.Add(-time.Second), dueNow: boundsNow, gone: boundsNow.Add(-time.Hour), notYet: boundsNow.Add(time.Second)}
	for id, when := range at {
		if id != gone {
			storeTestGrant(t, s, id)
			v.Policies[testPrefix+id] = wide
		}
		if err := PutSignDeadline(ctx, s, &SignDeadline{GrantID: id, At: when, Policy: testPrefix + id, Rules: narrowd}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := g.EndDueSigning(ctx, s, v.Client(), boundsNow)
	if err != nil || n != 2 {
		t.Fatalf("EndDueSigning = %d, %v; want 2 narrowed", n, err)
	}
	for id, want := range map[string]string{due: narrowd, dueNow: narrowd, notYet: wide} {
		if got, _ := v.Policy(testPrefix + id); got != want {
			t.Errorf("policy of %s: %s, want %s", id, got, want)
		}
	}
	if _, ok := v.Policy(testPrefix + gone); ok || v.CallCount("WritePolicy") != 2 {
		t.Errorf("the gone grant's policy was written (%d writes)", v.CallCount("WritePolicy"))
	}
	for _, id := range []string{due, dueNow, gone} {
		if d := getDeadline(t, s, id); d != nil {
			t.Errorf("deadline of %s kept: %+v", id, d)
		}
	}
	if d := getDeadline(t, s, notYet); d == nil || !d.At.Equal(at[notYet]) || d.Rules != narrowd {
		t.Errorf("deadline of %s: %+v, want it kept", notYet, d)
	}

	// Its time comes: the last one goes too.
	if n, err := g.EndDueSigning(ctx, s, v.Client(), boundsNow.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("EndDueSigning a second later = %d, %v; want 1", n, err)
	}
	if got, _ := v.Policy(testPrefix + notYet); got != narrowd || getDeadline(t, s, notYet) != nil {
		t.Fatalf("policy %s, deadline %+v after its time", got, getDeadline(t, s, notYet))
	}
}

// A policy write that fails keeps the deadline, so the next run tries again.
func TestEndDueSigningKeepsDeadlineOnWriteFailure(t *testing.T) {
	ctx := context.Background()
	g, v := boundsEnv(t)
	s := &logical.InmemStorage{}
	storeTestGrant(t, s, testGrantID)
	v.Policies[testPrefix+testGrantID] = "wide"
	if err := PutSignDeadline(ctx, s, &SignDeadline{GrantID: testGrantID, At: boundsNow, Policy: testPrefix + testGrantID, Rules: "narrow"}); err != nil {
		t.Fatal(err)
	}
	v.Fail("WritePolicy", vaultfake.ErrDown)
	n, err := g.EndDueSigning(ctx, s, v.Client(), boundsNow)
	if err == nil || !strings.Contains(err.Error(), "ending SSH signing of grant "+testGrantID) || n != 0 {
		t.Fatalf("EndDueSigning = %d, %v; want the write's error", n, err)
	}
	if getDeadline(t, s, testGrantID) == nil {
		t.Fatal("deadline deleted although the policy was not narrowed")
	}
	v.Fail("WritePolicy", nil)
	if n, err := g.EndDueSigning(ctx, s, v.Client(), boundsNow); err != nil || n != 1 {
		t.Fatalf("retry = %d, %v", n, err)
	}
	if got, _ := v.Policy(testPrefix + testGrantID); got != "narrow" || getDeadline(t, s, testGrantID) != nil {
		t.Fatalf("after the retry: policy %q, deadline %+v", got, getDeadline(t, s, testGrantID))
	}
}

// removeEnv is a live grant: its user, policy, record and SSH signing deadline.
func removeEnv(t *testing.T, required bool) (*Grants, *vaultfake.Vault, logical.Storage, Objects) {
	t.Helper()
	g, v := boundsEnv(t)
	s := &logical.InmemStorage{}
	name := g.ObjectName(testGrantID)
	v.AddUser("userpass", name)
	v.AddPolicy(name)
	storeTestGrant(t, s, testGrantID)
	if err := PutSignDeadline(context.Background(), s, &SignDeadline{GrantID: testGrantID, At: boundsNow, Policy: name, Rules: "narrow"}); err != nil {
		t.Fatal(err)
	}
	return g, v, s, Objects{GrantID: testGrantID, Username: name, Policy: name, UserpassMount: "userpass", RevokeLoginsRequired: required}
}

// noRevokeRules is a management ACL without sudo on revoke-prefix.
var noRevokeRules = map[string][]string{"sys/policies/acl/*": {"create", "read", "update", "delete"}, "auth/userpass/users/*": {"create", "update", "delete"}}

func grantState(t *testing.T, s logical.Storage) (record bool, history *store.HistoryRecord) {
	t.Helper()
	rec, err := store.GetGrant(context.Background(), s, testGrantID)
	if err != nil {
		t.Fatal(err)
	}
	h, err := store.GetHistory(context.Background(), s, testGrantID)
	if err != nil {
		t.Fatal(err)
	}
	return rec != nil, h
}

// A grant whose user can obtain leased credentials is not removed while the management
// token may not revoke the user's logins: the error makes Vault retry, and the record
// stays until a retry can.
func TestRemoveRequiresLoginRevoke(t *testing.T) {
	ctx := context.Background()
	g, v, s, objs := removeEnv(t, true)
	v.CapRules = noRevokeRules
	err := g.Remove(ctx, v.Client(), s, objs, store.EndedRevoked)
	if err == nil || !strings.Contains(err.Error(), "the management token lacks sudo on sys/leases/revoke-prefix/auth/userpass/login/*") ||
		!strings.Contains(err.Error(), objs.Username) {
		t.Fatalf("Remove = %v, want the missing revoke capability", err)
	}
	if record, h := grantState(t, s); !record || h != nil {
		t.Fatalf("record kept %v, history %+v; want the record and no history", record, h)
	}
	if len(v.RevokedLogins) != 0 || v.CallCount("RevokeLoginTokens") != 0 {
		t.Fatalf("revoked %v", v.RevokedLogins)
	}
	// The policy and user go first (that cuts the user's tokens); they are gone already.
	if _, ok := v.Policy(objs.Policy); ok {
		t.Fatal("policy kept")
	}
	if _, ok := v.User("userpass", objs.Username); ok {
		t.Fatal("user kept")
	}

	// The operator adds the capability; Vault's retry (a new client: the cached answer
	// was about the old one) removes the rest.
	v.CapRules = map[string][]string{"sys/leases/revoke-prefix/auth/userpass/login/*": {"sudo", "update"}}
	if err := g.Remove(ctx, v.Client(), s, objs, store.EndedRevoked); err != nil {
		t.Fatalf("retry: %v", err)
	}
	record, h := grantState(t, s)
	if record || h == nil || h.Ended != store.EndedRevoked {
		t.Fatalf("after the retry: record %v, history %+v", record, h)
	}
	if !reflect.DeepEqual(v.RevokedLogins, []string{"userpass/" + objs.Username}) || getDeadline(t, s, testGrantID) != nil {
		t.Fatalf("revoked %v, deadline %+v", v.RevokedLogins, getDeadline(t, s, testGrantID))
	}
}

// Without leased credentials the revoke is defence in depth: its absence fails nothing.
func TestRemoveWithoutLoginRevoke(t *testing.T) {
	g, v, s, objs := removeEnv(t, false)
	v.CapRules = noRevokeRules
	if err := g.Remove(context.Background(), v.Client(), s, objs, store.EndedRevoked); err != nil {
		t.Fatalf("Remove = %v", err)
	}
	record, h := grantState(t, s)
	if record || h == nil || h.Ended != store.EndedRevoked || h.GrantID != testGrantID {
		t.Fatalf("record %v, history %+v; want the record moved to history", record, h)
	}
	if len(v.RevokedLogins) != 0 || getDeadline(t, s, testGrantID) != nil {
		t.Fatalf("revoked %v, deadline %+v", v.RevokedLogins, getDeadline(t, s, testGrantID))
	}
	if len(v.PolicyNames()) != 0 || len(v.UserNames()) != 0 {
		t.Fatalf("left policies %v, users %v", v.PolicyNames(), v.UserNames())
	}
}

// A revoke the token may make but that fails: required, it fails the removal; otherwise
// it is logged and the removal goes on.
func TestRemoveRevokeFailure(t *testing.T) {
	for _, required := range []bool{true, false} {
		g, v, s, objs := removeEnv(t, required)
		v.Fail("RevokeLoginTokens", vaultfake.ErrDown)
		err := g.Remove(context.Background(), v.Client(), s, objs, store.EndedRevoked)
		record, h := grantState(t, s)
		if required {
			if err == nil || !strings.Contains(err.Error(), "revoking the login tokens of "+objs.Username+", whose leases must end with the grant") ||
				!strings.Contains(err.Error(), "Vault is sealed") {
				t.Fatalf("required: Remove = %v, want the revoke's error", err)
			}
			// The record stays for the retry; the deadline goes with the policy, or it
			// would write the policy back when it came (EndDueSigning).
			if !record || h != nil || getDeadline(t, s, testGrantID) != nil {
				t.Fatalf("required: record %v, history %+v, deadline %+v; want the record kept and the deadline gone", record, h, getDeadline(t, s, testGrantID))
			}
		} else {
			if err != nil {
				t.Fatalf("not required: Remove = %v", err)
			}
			if record || h == nil {
				t.Fatalf("not required: record %v, history %+v", record, h)
			}
		}
		if v.CallCount("RevokeLoginTokens") != 1 {
			t.Fatalf("required=%v: %d revoke calls, want 1", required, v.CallCount("RevokeLoginTokens"))
		}
	}
}
