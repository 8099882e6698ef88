package e2e

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/apono-io/vault-plugin-apono/internal/testldap"
	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// A real directory: Debian's slapd (internal/testldap) holds the people and the groups,
// Vault's LDAP auth method logs people in against it, and an external identity group with
// a group alias naming the LDAP group is what a secret's owner tag names. Vault reads a
// person's LDAP groups at login (and at token renewal) and puts their entity into the
// external groups whose aliases match; the plugin asks Vault for a caller's groups at
// each call.
//
//	lena  in kv-owners and engineering: approves, until she leaves kv-owners
//	omar  in kv-owners and engineering (a groupOfNames keeps one member)
//	rita  in engineering: the requester
//	nick  in engineering: no owner, until he joins kv-owners

const (
	ldapOwnersGroup = "kv-owners"      // the LDAP group (cn)
	ldapOwners      = "ldap-kv-owners" // the external identity group its alias fills
)

var ldapPeople = map[string]string{
	"lena": "lena-pw-Kq27", "omar": "omar-pw-Tr50", "rita": "rita-pw-Wn83", "nick": "nick-pw-Pz16",
}

func startLDAPDirectory(t *testing.T) *testldap.Server {
	t.Helper()
	var people []testldap.Person
	for _, uid := range slices.Sorted(maps.Keys(ldapPeople)) {
		people = append(people, testldap.Person{UID: uid, Password: ldapPeople[uid]})
	}
	return testldap.Start(t, testldap.Directory{People: people, Groups: []testldap.Group{
		{CN: ldapOwnersGroup, Members: []string{"lena", "omar"}},
		{CN: "engineering", Members: []string{"lena", "nick", "omar", "rita"}},
	}})
}

// ldapAuth is Vault's LDAP auth method at mount, pointed at a testldap server.
type ldapAuth struct {
	mount, accessor string
}

// enableLDAPAuth enables the LDAP auth method at mount against dir, as an operator would
// for a company directory: Vault binds as the read-only service account, finds a person by
// uid under ou=people, and takes their groups' cn from the groupOfNames that name their DN.
// Every login gets policies.
func enableLDAPAuth(t *testing.T, e *env, dir *testldap.Server, mount string, policies ...string) *ldapAuth {
	t.Helper()
	e.root(t, "auth", "enable", "-path="+mount, "ldap")
	e.root(t, "write", "auth/"+mount+"/config",
		"url="+dir.URL(),
		"binddn="+testldap.BindDN, "bindpass="+dir.BindPassword,
		"userdn="+testldap.PeopleDN, "userattr=uid",
		"groupdn="+testldap.GroupsDN, "groupfilter=(&(objectClass=groupOfNames)(member={{.UserDN}}))", "groupattr=cn",
		"token_policies="+strings.Join(policies, ","), "token_ttl=10m")
	auths := e.jsonOut(t, "", "read", "sys/auth")["data"].(map[string]interface{})
	accessor, _ := auths[mount+"/"].(map[string]interface{})["accessor"].(string)
	if accessor == "" {
		t.Fatalf("no accessor for auth mount %s: %v", mount, auths)
	}
	return &ldapAuth{mount: mount, accessor: accessor}
}

// externalGroup makes an identity group of type external that the LDAP group ldapGroup
// fills: a group alias named after it on the LDAP mount.
func (a *ldapAuth) externalGroup(t *testing.T, e *env, name, ldapGroup string) string {
	t.Helper()
	g := e.jsonOut(t, "", "write", "identity/group", "name="+name, "type=external")
	id, _ := g["data"].(map[string]interface{})["id"].(string)
	if id == "" {
		t.Fatalf("external group %s: %v", name, g)
	}
	e.root(t, "write", "identity/group-alias", "name="+ldapGroup, "canonical_id="+id, "mount_accessor="+a.accessor)
	return id
}

// login logs uid in with `vault login -method=ldap` and returns the token and the entity.
func (a *ldapAuth) login(t *testing.T, e *env, uid string) (token, entityID string) {
	t.Helper()
	v := e.jsonOut(t, "", "login", "-no-store", "-method=ldap", "-path="+a.mount, "username="+uid, "password="+ldapPeople[uid])
	auth, _ := v["auth"].(map[string]interface{})
	token, _ = auth["client_token"].(string)
	entityID, _ = auth["entity_id"].(string)
	if token == "" || entityID == "" {
		t.Fatalf("LDAP login of %s: %s", uid, jsonString(t, v))
	}
	return token, entityID
}

// groupMembers is the external group's member_entity_ids as Vault's identity store has them.
func groupMembers(t *testing.T, e *env, name string) []string {
	t.Helper()
	data := e.jsonOut(t, "", "read", "identity/group/name/"+name)["data"].(map[string]interface{})
	var ids []string
	for _, id := range asSlice(data["member_entity_ids"]) {
		ids = append(ids, id.(string))
	}
	return ids
}

func asSlice(v interface{}) []interface{} {
	s, _ := v.([]interface{})
	return s
}

// ldapOwnedSecret puts kv/<path> owned by the external group and a role over it that the
// owners approve.
func ldapOwnedSecret(t *testing.T, e *env, mount, role, path, secret string, roleArgs ...string) {
	t.Helper()
	e.root(t, "kv", "put", "kv/"+path, "password="+secret)
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=group:"+ldapOwners, "kv/"+path)
	e.root(t, append([]string{"write", mount + "/roles/" + role, "resources=kv/" + path, "approval=required", "approvers=owner", "ttl=5m"}, roleArgs...)...)
}

// configureOwnerTags has the apono mount of e read owners from the owner tag (the
// security group approves what no tag names) and writes the README's policies.
func configureOwnerTags(t *testing.T, e *env) {
	t.Helper()
	e.root(t, "write", "apono/config", "owner_metadata_key=owner", "integration_owner=security", "role_id="+e.setup.RoleID, "secret_id="+e.setup.SecretID)
	e.writePolicy(t, "access-requester", testdataFile(t, "access-requester.hcl"))
	e.writePolicy(t, "access-approver", testdataFile(t, "access-approver.hcl"))
}

// Issue 27, a real directory: a secret owned by an external group that an LDAP group
// fills. A member of the LDAP group who logs in with `vault login -method=ldap` approves,
// others cannot; the requester (an LDAP user too) picks up and reads. When the directory
// drops her from the group, Vault (and so the plugin) still counts her until Vault next
// reads her groups, at her next login; from then on she is refused, with the token she had
// and the new one, and what she approved in that window no longer carries its pickup. A
// person added to the LDAP group approves after his next login.
func TestLDAPGroupApproves(t *testing.T) {
	t.Parallel()
	dir := startLDAPDirectory(t)
	e := ownVault(t, testvault.Options{})
	configureOwnerTags(t, e)
	ldap := enableLDAPAuth(t, e, dir, "ldap", "access-requester", "access-approver")
	ldap.externalGroup(t, e, ldapOwners, ldapOwnersGroup)
	const role = "ldap-db"
	ldapOwnedSecret(t, e, "apono", role, "ldap/db", "ldap-secret-Hx41")

	lena, lenaEntity := ldap.login(t, e, "lena")
	rita, ritaEntity := ldap.login(t, e, "rita")
	nick, nickEntity := ldap.login(t, e, "nick")
	if got := groupMembers(t, e, ldapOwners); !slices.Equal(got, []string{lenaEntity}) {
		t.Fatalf("%s after lena's, rita's and nick's logins: %v, want lena's entity %s only", ldapOwners, got, lenaEntity)
	}
	if _, _, err := e.s.CLI("", "login", "-no-store", "-method=ldap", "username=lena", "password=wrong"); err == nil {
		t.Fatal("lena logs in with a wrong password")
	}

	refused := func(t *testing.T, who, token, id string) {
		t.Helper()
		stderr := e.mustFail(t, token, "write", "-f", "apono/requests/"+id+"/approve")
		if !strings.Contains(stderr, "Code: 403") || !strings.Contains(stderr, "is not an approver") {
			t.Fatalf("%s approving %s: want 403 is not an approver, got:\n%s", who, id, stderr)
		}
	}
	request := func(t *testing.T) string {
		t.Helper()
		v := e.jsonOut(t, rita, "write", "-f", "apono/requests/"+role)
		data, _ := v["data"].(map[string]interface{})
		id, _ := data["request_id"].(string)
		if data["status"] != "pending" || id == "" {
			t.Fatalf("rita's request: %s", jsonString(t, v))
		}
		if got := jsonString(t, data["approvers"]); got != `["group:`+ldapOwners+`"]` {
			t.Fatalf("approvers from the owner tag: %s", got)
		}
		return id
	}
	canApprove := func(t *testing.T, token, id string) bool {
		t.Helper()
		return strings.Contains(jsonString(t, e.jsonOut(t, token, "read", "apono/requests", "can_approve=true")), id)
	}
	status := func(t *testing.T, id string) string {
		t.Helper()
		s, _ := e.jsonOut(t, "", "read", "apono/audit/requests/"+id)["data"].(map[string]interface{})["status"].(string)
		return s
	}

	id := request(t)
	refused(t, "nick", nick, id)
	if !canApprove(t, lena, id) {
		t.Fatalf("can_approve for lena lacks %s", id)
	}
	v := e.jsonOut(t, lena, "write", "apono/requests/"+id+"/approve", "reason=LDAP group kv-owners")
	if data, _ := v["data"].(map[string]interface{}); data["status"] != "approved" {
		t.Fatalf("after lena: %s", jsonString(t, v))
	}
	approvals := jsonString(t, e.jsonOut(t, "", "read", "apono/audit/requests/"+id)["data"])
	if !strings.Contains(approvals, lenaEntity) {
		t.Fatalf("the request does not record lena's entity %s as its approver: %s", lenaEntity, approvals)
	}
	g := e.grantAs(t, rita, "apono/requests/"+id+"/grant")
	if got := strings.TrimSpace(e.s.MustCLI(t, e.mustLogin(t, g), "kv", "get", "-field=password", "kv/ldap/db")); got != "ldap-secret-Hx41" {
		t.Fatalf("the grant's user read %q", got)
	}
	e.root(t, "lease", "revoke", g.LeaseID)
	if slices.Contains(groupMembers(t, e, ldapOwners), ritaEntity) {
		t.Fatal("rita's pickup put her in the owners' group")
	}

	// lena leaves kv-owners in the directory. Vault has not asked: its group still holds
	// her, and so the plugin still counts her, and she still approves: the window lasts
	// until Vault next reads her groups.
	left := time.Now()
	dir.RemoveMember(t, ldapOwnersGroup, "lena")
	if got := dir.Members(t, ldapOwnersGroup); !slices.Equal(got, []string{"omar"}) {
		t.Fatalf("kv-owners in the directory after removing lena: %v", got)
	}
	stale := request(t)
	if got := groupMembers(t, e, ldapOwners); !slices.Contains(got, lenaEntity) {
		t.Fatalf("Vault dropped lena from %s before she logged in again: %v", ldapOwners, got)
	}
	if !canApprove(t, lena, stale) {
		t.Fatalf("lena's old token lost can_approve on %s before Vault read her groups again", stale)
	}
	v = e.jsonOut(t, lena, "write", "apono/requests/"+stale+"/approve", "reason=not yet told")
	if data, _ := v["data"].(map[string]interface{}); data["status"] != "approved" {
		t.Fatalf("lena's approval before her next login: %s", jsonString(t, v))
	}
	t.Logf("measured: %s after the directory dropped lena, before her next login, Vault still has her in %s and her approval of %s counts", time.Since(left).Round(time.Millisecond), ldapOwners, stale)

	// Her next login tells Vault: from then on she is refused, old token and new.
	lena2, lenaEntity2 := ldap.login(t, e, "lena")
	if lenaEntity2 != lenaEntity {
		t.Fatalf("lena's second login has entity %s, her first %s", lenaEntity2, lenaEntity)
	}
	if got := groupMembers(t, e, ldapOwners); slices.Contains(got, lenaEntity) {
		t.Fatalf("Vault kept lena in %s after a login without the LDAP group: %v", ldapOwners, got)
	}
	id = request(t)
	refused(t, "lena (token from before she left)", lena, id)
	refused(t, "lena (token from her next login)", lena2, id)
	if stderr := e.mustFail(t, lena2, "write", "-f", "apono/requests/"+id+"/approve"); strings.Contains(stderr, "* ") {
		t.Logf("measured: lena's approval after her next login: %s", strings.TrimSpace(stderr[strings.LastIndex(stderr, "* "):]))
	}
	// What she approved while Vault still counted her is read again at pickup, and no
	// longer carries the request.
	stderr := e.mustFail(t, rita, "write", "-f", "apono/requests/"+stale+"/grant")
	if !strings.Contains(stderr, "Code: 403") || !strings.Contains(stderr, "(ldap-lena) no longer counts") {
		t.Fatalf("rita picking up what lena approved before Vault dropped her: want 403 no longer counts, got:\n%s", stderr)
	}
	t.Logf("measured: rita's pickup of %s, approved by lena in the window: %s", stale, strings.TrimSpace(stderr[strings.LastIndex(stderr, "* "):]))
	e.jsonOut(t, rita, "write", "-f", "apono/requests/"+stale+"/cancel")
	if canApprove(t, lena2, id) {
		t.Fatalf("can_approve for lena still lists %s after her next login", id)
	}
	if s := status(t, id); s != "pending" {
		t.Fatalf("status after lena's refused approvals: %s", s)
	}
	t.Logf("measured: at lena's next login (%s after she left the LDAP group) Vault dropped her from %s; her approval of %s is refused with 403", time.Since(left).Round(time.Millisecond), ldapOwners, id)

	// nick joins kv-owners in the directory: with his old token he is still refused; after
	// his next login he approves.
	dir.AddMember(t, ldapOwnersGroup, "nick")
	refused(t, "nick (token from before he joined)", nick, id)
	nick2, _ := ldap.login(t, e, "nick")
	if got := groupMembers(t, e, ldapOwners); !slices.Contains(got, nickEntity) {
		t.Fatalf("Vault did not put nick in %s at his login after he joined: %v", ldapOwners, got)
	}
	v = e.jsonOut(t, nick2, "write", "apono/requests/"+id+"/approve", "reason=joined kv-owners")
	if data, _ := v["data"].(map[string]interface{}); data["status"] != "approved" {
		t.Fatalf("after nick joined: %s", jsonString(t, v))
	}
	g = e.grantAs(t, rita, "apono/requests/"+id+"/grant")
	e.root(t, "lease", "revoke", g.LeaseID)

	// slapd saw every login as a bind of the person's own DN.
	for _, uid := range []string{"lena", "rita", "nick"} {
		if !strings.Contains(dir.Log(), `BIND dn="`+testldap.UserDN(uid)+`" method=128`) {
			t.Errorf("slapd's log has no bind of %s", testldap.UserDN(uid))
		}
	}
}

// Renewing a token is the other time Vault's LDAP auth method reads a person's groups: a
// renewal after she left the LDAP group takes her out of the external group too.
func TestLDAPTokenRenewRereadsGroups(t *testing.T) {
	t.Parallel()
	dir := startLDAPDirectory(t)
	e := ownVault(t, testvault.Options{})
	configureOwnerTags(t, e)
	ldap := enableLDAPAuth(t, e, dir, "ldap", "access-requester", "access-approver")
	ldap.externalGroup(t, e, ldapOwners, ldapOwnersGroup)
	const role = "ldap-renew"
	ldapOwnedSecret(t, e, "apono", role, "ldap/renew", "renew-secret-Jd05")
	lena, lenaEntity := ldap.login(t, e, "lena")
	rita, _ := ldap.login(t, e, "rita")

	dir.RemoveMember(t, ldapOwnersGroup, "lena")
	e.jsonOut(t, lena, "token", "renew")
	if got := groupMembers(t, e, ldapOwners); slices.Contains(got, lenaEntity) {
		t.Fatalf("Vault kept lena in %s after renewing her token without the LDAP group: %v", ldapOwners, got)
	}
	id, _ := e.jsonOut(t, rita, "write", "-f", "apono/requests/"+role)["data"].(map[string]interface{})["request_id"].(string)
	stderr := e.mustFail(t, lena, "write", "-f", "apono/requests/"+id+"/approve")
	if !strings.Contains(stderr, "Code: 403") || !strings.Contains(stderr, "is not an approver") {
		t.Fatalf("lena approving after her renewal: want 403 is not an approver, got:\n%s", stderr)
	}
}

// A person signs in to the portal with the LDAP auth method (the Username form, its path
// set to ldap), in chromium, and approves a request for a secret her LDAP group owns.
func TestLDAPPortalSignIn(t *testing.T) {
	dir := startLDAPDirectory(t)
	f := newPortalFixture(t)
	e := f.e
	ldap := enableLDAPAuth(t, e, dir, "ldap", "access-requester", "access-approver")
	ldap.externalGroup(t, e, ldapOwners, ldapOwnersGroup)
	const role = "ldap-db"
	ldapOwnedSecret(t, e, "apono", role, "ldap/db", "ldap-secret-Hx41")
	v := e.jsonOut(t, f.people["alice"].token, "write", "apono/requests/"+role, "justification=INC-27: read the LDAP-owned db")
	id, _ := v["data"].(map[string]interface{})["request_id"].(string)
	if id == "" {
		t.Fatalf("alice's request: %s", jsonString(t, v))
	}

	lena := f.newTab(t, "lena", f.portalURL())
	lena.open("/approve")
	// A wrong password: Vault's LDAP auth method refuses, and the page says so.
	lena.signInLDAP("ldap", "lena", "not-her-password")
	lena.waitFor(`!!document.querySelector('.signin-status .alert-error')`, "an error for a wrong password")
	t.Logf("a wrong LDAP password: the page shows %q", lena.text(".signin-status .alert-error"))
	if lena.token() != "" {
		t.Fatal("the page keeps a token after a refused sign-in")
	}

	lena.signInLDAP("ldap", "lena", ldapPeople["lena"])
	lena.waitText("#user [data-who]", "lena")
	lookup := e.jsonOut(t, lena.token(), "token", "lookup")["data"].(map[string]interface{})
	if path, _ := lookup["path"].(string); !strings.HasPrefix(path, "auth/ldap/login") || lookup["entity_id"] == "" {
		t.Fatalf("the page's token: %v", lookup)
	}
	if got := groupMembers(t, e, ldapOwners); !slices.Contains(got, lookup["entity_id"].(string)) {
		t.Fatalf("lena's portal sign-in did not put her in %s: %v", ldapOwners, got)
	}
	if prefs := eval[string](lena, `localStorage.getItem('apono-portal-signin') || ''`); !strings.Contains(prefs, `"passwordMount":"ldap"`) || strings.Contains(prefs, "lena") {
		t.Fatalf("the sign-in choices the page remembers: %s", prefs)
	}

	card := `[data-request="` + id + `"]`
	lena.waitText(card, "alice asks for "+role)
	lena.waitText(card, ldapOwners+" (group)")
	lena.do(chromedp.Click(chromedp.JSPath(`[...document.querySelectorAll('` + card + ` button')].find((b) => b.textContent === 'Approve')`)))
	lena.waitText(card, "You approved. The request is approved: alice can pick it up.")
	if s := f.status(t, id); s != "approved" {
		t.Fatalf("request status %q after lena's approval in the portal", s)
	}
	lena.clean()

	// nick, signed in the same way but in no owning group, has nothing to approve.
	nick := f.newTab(t, "nick", f.portalURL())
	nick.open("/approve")
	nick.signInLDAP("ldap", "nick", ldapPeople["nick"])
	nick.waitText("#user [data-who]", "nick")
	nick.waitText("main", "Nothing to approve")
	nick.clean()
}

// signInLDAP fills the Username form with the auth method's path set to mount and submits.
func (tb *tab) signInLDAP(mount, uid, password string) {
	tb.t.Helper()
	tb.waitText("main h1", "Sign in")
	// Each field is emptied first (its value, not its attribute: the mount field holds
	// userpass, and a field typed into before ignores its attribute), then typed into.
	for _, field := range []struct{ name, value string }{{"username", uid}, {"password", password}, {"mount", mount}} {
		sel := `form:not([hidden]) input[name="` + field.name + `"]`
		tb.do(chromedp.Evaluate[chromedp.Void](`document.querySelector(`+js(sel)+`).value = ''`), chromedp.SendKeys(chromedp.CSS(sel), field.value))
	}
	tb.do(chromedp.Click(chromedp.CSS(`form:not([hidden]) button[type="submit"]`)))
}
