package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// Access flows that follow time and rules, on a Vault of their own: its clock is the
// test's, and windows are set around the test's own time (never by waiting for a weekday).

// timeVault is a Vault with people (alice asks; bob owns kv/app/db through group owners),
// the README's policies and a sweeper that runs on every rollback tick.
type timeVault struct {
	*env
	alice, bob *person
}

func newTimeVault(t *testing.T) *timeVault {
	t.Helper()
	e := ownVault(t, testvault.Options{PluginEnv: []string{"APONO_SWEEP_INTERVAL=1s"}})
	e.writePolicy(t, "time-people", requesterPolicy(t, "apono")+"\n"+approverPolicy(t, "apono"))
	tv := &timeVault{env: e, alice: e.person(t, "alice", "time-people"), bob: e.person(t, "bob", "time-people")}
	e.root(t, "write", "identity/group", "name=owners", "member_entity_ids="+tv.bob.entityID)
	e.root(t, "write", "apono/config", "owner_metadata_key=owner", "integration_owner=owners")
	e.root(t, "kv", "put", "kv/app/db", "password=timely")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=owners", "kv/app/db")
	return tv
}

// dailyWindow is a daily UTC window from now+from to now+to.
func dailyWindow(from, to time.Duration) string {
	now := time.Now().UTC()
	return fmt.Sprintf("access_windows=daily %s-%s UTC", now.Add(from).Format("15:04"), now.Add(to).Format("15:04"))
}

func (tv *timeVault) ask(t *testing.T, role string, args ...string) map[string]interface{} {
	t.Helper()
	return tv.jsonOut(t, tv.alice.token, append([]string{"write", "-f", "apono/requests/" + role}, args...)...)["data"].(map[string]interface{})
}

// A request scheduled for later is approved now, cannot be picked up before its start and
// can after; an approver who left the owners' group between approval and start makes the
// pickup fail.
func TestScheduledAccessStartsWhenAsked(t *testing.T) {
	t.Parallel()
	tv := newTimeVault(t)
	tv.root(t, "write", "apono/roles/later", "resources=kv/app/db", "approval=required", "approvers=owner", "ttl=10m", "max_schedule_ahead=1h")
	start := time.Now().Add(25 * time.Second).UTC().Truncate(time.Second)
	tv.refusedAs(t, tv.alice.token, 400, "max_schedule_ahead", "write", "apono/requests/later", "start_at="+start.Add(2*time.Hour).Format(time.RFC3339))
	id := tv.ask(t, "later", "start_at="+start.Format(time.RFC3339))["request_id"].(string)
	tv.jsonOut(t, tv.bob.token, "write", "-f", "apono/requests/"+id+"/approve")
	tv.refusedAs(t, tv.alice.token, 400, "is for access from "+start.Format(time.RFC3339), "write", "-f", "apono/requests/"+id+"/grant")

	// bob leaves the owners' group before the start.
	tv.root(t, "write", "identity/group/name/owners", "member_entity_ids=")
	time.Sleep(time.Until(start) + time.Second)
	tv.refusedAs(t, tv.alice.token, 403, "the approval of bob", "write", "-f", "apono/requests/"+id+"/grant")
	tv.root(t, "write", "identity/group/name/owners", "member_entity_ids="+tv.bob.entityID)
	g := tv.grantAs(t, tv.alice.token, "apono/requests/"+id+"/grant")
	if g.LeaseDuration > 600 || g.LeaseDuration < 560 {
		t.Fatalf("a grant picked up after its start lasts %ds; want a little under 600 (it ends ttl after start_at)", g.LeaseDuration)
	}
	if got := strings.TrimSpace(tv.s.MustCLI(t, tv.mustLogin(t, g), "kv", "get", "-field=password", "kv/app/db")); got != "timely" {
		t.Fatalf("the scheduled grant read %q", got)
	}
}

func (e *env) refusedAs(t *testing.T, token string, code int, want string, args ...string) {
	t.Helper()
	stderr := e.mustFail(t, token, args...)
	if !strings.Contains(stderr, fmt.Sprintf("Code: %d", code)) || !strings.Contains(stderr, want) {
		t.Fatalf("vault %s: want %d saying %q, got:\n%s", strings.Join(args, " "), code, want, stderr)
	}
}

// A request outside every window is refused with the next window's start; a window that
// closes in two minutes caps a grant; break-glass ignores windows and is marked.
func TestAccessWindowsRefuseAndCap(t *testing.T) {
	t.Parallel()
	tv := newTimeVault(t)
	tv.root(t, "write", "apono/roles/closed", "resources=kv/app/db", "approval=required", "approvers=owner", "break_glass=true",
		dailyWindow(2*time.Hour, 3*time.Hour))
	tv.refusedAs(t, tv.alice.token, 400, "outside every access window; the next opens at", "write", "-f", "apono/requests/closed")
	bg := tv.grantAs(t, tv.alice.token, "apono/break-glass/closed", "justification=outage at night")
	rec := tv.jsonOut(t, "", "read", "apono/grants/closed/"+bg.GrantID)["data"].(map[string]interface{})
	if rec["windows_ignored"] != true {
		t.Fatalf("a break-glass grant outside the windows is not marked: %v", rec)
	}
	tv.root(t, "write", "apono/roles/closing", "resources=kv/app/db", "ttl=1h", dailyWindow(-time.Hour, 3*time.Minute))
	g := tv.grantAs(t, "", "apono/grants/closing", "requester=svc@example.com")
	if g.LeaseDuration > 180 || !strings.Contains(jsonString(t, g.Warnings), "access window this grant started in ends") {
		t.Fatalf("a grant in a closing window: lease %ds, warnings %v", g.LeaseDuration, g.Warnings)
	}
	r := tv.jsonOut(t, "", "lease", "renew", "-increment=1h", g.LeaseID)
	if d := r["lease_duration"].(float64); d > 180 {
		t.Fatalf("a renewal passed the window's end: %vs", d)
	}
	tv.root(t, "lease", "revoke", "-sync", g.LeaseID)
	tv.root(t, "lease", "revoke", "-sync", bg.LeaseID)
}

// An extension approved by the owner lets a renewal pass the approved end (the request's
// ttl, here the role's max_ttl) once, up to its end; an unapproved one does not.
func TestExtensionLetsARenewalPassMaxTTL(t *testing.T) {
	t.Parallel()
	tv := newTimeVault(t)
	tv.writePolicy(t, "time-extend", `path "apono/grants/+/+/extend" { capabilities = ["update"] }`)
	tv.root(t, "write", "identity/entity/id/"+tv.alice.entityID, "policies=time-extend")
	tv.root(t, "write", "apono/roles/ext", "resources=kv/app/db", "approval=required", "approvers=owner", "ttl=1m", "max_ttl=2m")
	id := tv.ask(t, "ext", "ttl=2m")["request_id"].(string)
	tv.jsonOut(t, tv.bob.token, "write", "-f", "apono/requests/"+id+"/approve")
	g := tv.grantAs(t, tv.alice.token, "apono/grants/ext", "request_id="+id)
	renew := func() float64 {
		return tv.jsonOut(t, "", "lease", "renew", "-increment=1h", g.LeaseID)["lease_duration"].(float64)
	}
	if d := renew(); d > 120 {
		t.Fatalf("renewed past max_ttl without an extension: %vs", d)
	}
	ext := tv.jsonOut(t, tv.alice.token, "write", "apono/grants/ext/"+g.GrantID+"/extend", "ttl=10m", "justification=the migration runs long")["data"].(map[string]interface{})
	extID := ext["request_id"].(string)
	if d := renew(); d > 120 {
		t.Fatalf("renewed past max_ttl with the extension pending: %vs", d)
	}
	tv.jsonOut(t, tv.bob.token, "write", "apono/requests/"+extID+"/approve", "reason=ok, once")
	if d := renew(); d < 600 || d > 720 {
		t.Fatalf("after the approved extension a renewal gave %vs; want about 12 minutes from issue", d)
	}
	rec := tv.jsonOut(t, "", "read", "apono/grants/ext/"+g.GrantID)["data"].(map[string]interface{})
	if exts := rec["extensions"].([]interface{}); len(exts) != 1 || !strings.Contains(jsonString(t, exts[0]), `"approver":"bob"`) {
		t.Fatalf("the grant's record of its extension: %v", rec["extensions"])
	}
	tv.root(t, "lease", "revoke", "-sync", g.LeaseID)
}

// An auto_approve rule grants a matching request at once and leaves a non-matching one
// pending.
func TestAutoApproveGrantsAMatchingRequestAtOnce(t *testing.T) {
	t.Parallel()
	tv := newTimeVault(t)
	olly := tv.person(t, "olly", "time-people")
	tv.root(t, "write", "identity/group", "name=oncall", "member_entity_ids="+olly.entityID+","+tv.alice.entityID)
	tv.root(t, "write", "apono/roles/auto", "resources=kv/app/db", "approval=required", "approvers=owner", "permissions=read,read-write",
		`auto_approve=[{"name":"oncall-read","groups":["oncall"],"resources":["kv/app/db"],"permissions":["read"],"max_ttl":"30m"}]`)
	d := tv.jsonOut(t, olly.token, "write", "apono/requests/auto", "ttl=10m")["data"].(map[string]interface{})
	if d["status"] != "approved" || d["auto_approved_by"] != "oncall-read" || d["approval_progress"] != "approved by rule oncall-read" {
		t.Fatalf("a matching request: %v", d)
	}
	g := tv.grantAs(t, olly.token, "apono/requests/"+d["request_id"].(string)+"/grant")
	tv.mustLogin(t, g)
	if d := tv.jsonOut(t, olly.token, "write", "apono/requests/auto", "permission=read-write")["data"].(map[string]interface{}); d["status"] != "pending" {
		t.Fatalf("a request the rule does not allow: %v", d["status"])
	}
	if d := tv.ask(t, "auto", "ttl=1h"); d["status"] != "pending" {
		t.Fatalf("longer than the rule's max_ttl: %v", d["status"])
	}
	tv.root(t, "lease", "revoke", "-sync", g.LeaseID)
}

// History lists ended grants of each kind (revoked, expired, swept), answers who had
// access to kv/app/db, and its CSV loads in Python's csv module with the same rows.
func TestHistoryOfEndedGrants(t *testing.T) {
	t.Parallel()
	tv := newTimeVault(t)
	tv.root(t, "write", "apono/roles/h", "resources=kv/app/*", "ttl=1h")
	revoked := tv.grantAs(t, "", "apono/grants/h", "resources=kv/app/db", "requester=rev@example.com")
	tv.root(t, "lease", "revoke", "-sync", revoked.LeaseID)
	// A grant whose revoke fails (its policy may not be deleted) and is forced out of
	// Vault's leases: the sweeper ends it.
	swept := tv.grantAs(t, "", "apono/grants/h", "resources=kv/app/db", "requester=swept@example.com", "ttl=2s")
	noDelete := strings.Replace(managementPolicy(t), `path "sys/policies/acl/apono-*" { capabilities = ["create","update","read","delete","list"] }`,
		`path "sys/policies/acl/apono-*" { capabilities = ["create","update","read","list"] }`, 1)
	if noDelete == managementPolicy(t) {
		t.Fatal("the management policy's policy rule changed; update the test")
	}
	tv.writePolicy(t, testvault.PolicyName, noDelete)
	time.Sleep(4 * time.Second)
	tv.root(t, "lease", "revoke", "-force", "-prefix", swept.LeaseID)
	tv.writePolicy(t, testvault.PolicyName, managementPolicy(t))
	expired := tv.grantAs(t, "", "apono/grants/h", "resources=kv/app/*", "requester=exp@example.com", "ttl=3s")
	var rows []map[string]interface{}
	deadline := time.Now().Add(4 * time.Minute)
	for {
		v := tv.jsonOut(t, "", "read", "apono/history")["data"].(map[string]interface{})["history"].([]interface{})
		rows = nil
		ended := map[string]string{}
		for _, r := range v {
			m := r.(map[string]interface{})
			rows = append(rows, m)
			ended[m["grant_id"].(string)] = m["ended"].(string)
		}
		if ended[revoked.GrantID] == "revoked" && ended[expired.GrantID] == "expired" && ended[swept.GrantID] == "swept" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history after 4 minutes: %v", ended)
		}
		time.Sleep(2 * time.Second)
	}
	who := tv.jsonOut(t, "", "read", "apono/history", "resource=kv/app/db")["data"].(map[string]interface{})["history"].([]interface{})
	if len(who) != 3 {
		t.Fatalf("who had access to kv/app/db (two grants of it, one of kv/app/*): %v", who)
	}

	// The CSV, straight from the API, as an auditor's script reads it.
	req, _ := http.NewRequest(http.MethodGet, tv.s.URL()+"/v1/apono/history?format=csv", nil)
	req.Header.Set("X-Vault-Token", tv.s.RootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("history as CSV: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	py := exec.Command("python3", "-c", "import csv, json, sys; print(json.dumps(list(csv.DictReader(sys.stdin))))")
	py.Stdin = strings.NewReader(string(body))
	out, err := py.Output()
	if err != nil {
		t.Fatalf("python3's csv module: %v\n%s", err, body)
	}
	var parsed []map[string]string
	if err := json.Unmarshal(out, &parsed); err != nil {
		t.Fatal(err)
	}
	if len(parsed) != len(rows) {
		t.Fatalf("the CSV has %d rows, the JSON %d", len(parsed), len(rows))
	}
	for i, r := range rows {
		for _, col := range []string{"grant_id", "role", "requester", "ended", "permission", "issued_at", "ended_at"} {
			if parsed[i][col] != r[col] {
				t.Fatalf("row %d column %s: CSV %q, JSON %q", i, col, parsed[i][col], r[col])
			}
		}
	}
}
