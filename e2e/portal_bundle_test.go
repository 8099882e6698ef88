package e2e

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// A bundle asked for, approved part by part and picked up in the browser: alice sees the
// bundle beside the roles, who approves each part before she asks, and which parts are
// approved; bob approves his part in his own browser; the pickup is one login that reads
// the KV secret and encrypts with the Transit key.
func TestPortalBundleFlow(t *testing.T) {
	f := newPortalFixture(t)
	f.e.root(t, "write", "-f", "transit/keys/payments")
	f.e.root(t, "write", "apono/roles/pay-keys", "resources=transit/payments", "permissions=encrypt", "ttl=1h",
		"approval=required", "approvers=owner")
	f.e.root(t, "write", "apono/bundles/app-oncall", `parts=[{"role":"app-db"},{"role":"pay-keys"}]`, "ttl=1h",
		"description=Payments on-call: the app's database secret and its card key")
	alice := f.newTab(t, "alice", f.portalURL())
	bob := f.newTab(t, "bob", f.portalURL())
	var id string
	step := func(name string, fn func(t *testing.T)) {
		if !t.Run(name, fn) {
			t.FailNow()
		}
	}

	step("alice is offered the bundle beside the roles and sees who approves each part", func(t *testing.T) {
		alice.t = t
		alice.open("/request")
		alice.signIn(f.people["alice"])
		alice.waitText(`[data-bundle="app-oncall"]`, "Bundle · 2 roles")
		alice.waitText(`[data-bundle="app-oncall"]`, "app-db + pay-keys")
		alice.do(chromedp.Click(chromedp.CSS(`[data-bundle="app-oncall"] label`)))
		alice.waitText(".request-form h2", "Ask for the app-oncall bundle")
		alice.waitText(".request-form", "Justification (required)") // app-db requires one
		alice.waitText(`.preview [data-part="app-db"]`, "kv-owners (group)")
		alice.waitText(`.preview [data-part="pay-keys"]`, "security (group)")
		alice.waitText(`.preview [data-part="pay-keys"]`, "transit/payments")
		alice.do(chromedp.SendKeys(chromedp.CSS(`textarea[name="justification"]`), "INC-5150: card payments failing"))
		accessible(t, alice)
		alice.shot("bundle-request", ".bundles")
		alice.shot("bundle-preview", ".preview")
		alice.do(chromedp.Click(chromedp.CSS(`.request-form button[type="submit"]`)))
		alice.waitText("main h1", "Request for the app-oncall bundle")
		alice.waitText(`[data-part="app-db"]`, "waiting")
		alice.waitText(`[data-part="pay-keys"]`, "waiting")
		id = strings.TrimPrefix(eval[string](alice, `location.hash`), "#/requests/")
		got := f.e.jsonOut(t, "", "read", "apono/audit/requests/"+id)["data"].(map[string]interface{})
		if got["bundle"] != "app-oncall" || got["justification"] != "INC-5150: card payments failing" || len(got["parts"].([]interface{})) != 2 {
			t.Fatalf("the request Vault holds: %v", got)
		}
		alice.clean()
	})

	step("bob approves his part; the request shows one part approved, one waiting", func(t *testing.T) {
		bob.t = t
		bob.open("/approve")
		bob.signIn(f.people["bob"])
		card := `[data-request="` + id + `"]`
		bob.waitText(card, "alice asks for the app-oncall bundle")
		bob.do(chromedp.SendKeys(chromedp.CSS(card+` textarea[name="reason"]`), "db part ok"))
		bob.do(chromedp.Click(chromedp.JSPath(`[...document.querySelectorAll('` + card + ` button')].find((b) => b.textContent === 'Approve')`)))
		bob.waitText(card, "More approvals are needed")
		bob.clean()

		alice.t = t
		alice.do(chromedp.Reload())
		alice.waitText(`[data-part="app-db"] .part-head`, "approved")
		alice.waitText(`[data-part="pay-keys"] .part-head`, "waiting")
		alice.shot("bundle-detail", ".parts")
		alice.clean()
	})

	step("once every part is approved, alice picks up one login that reads and encrypts", func(t *testing.T) {
		f.e.loginPerson(t, f.people["erin"])
		f.e.jsonOut(t, f.people["erin"].token, "write", "apono/requests/"+id+"/approve", "reason=key part ok")
		alice.t = t
		alice.do(chromedp.Reload())
		alice.waitText("main", "Approved: ready to pick up")
		alice.do(chromedp.Click(chromedp.JSPath(`[...document.querySelectorAll('main button')].find((b) => b.textContent === 'Pick up')`)))
		alice.waitText("main .credentials", "Your access is ready")
		username := alice.text(`main [data-cred="username"]`)
		password := eval[string](alice, `document.querySelector('main input.secret').value`)
		out, _, err := f.e.s.CLI("", "login", "-no-store", "-token-only", "-method=userpass", "username="+username, "password="+password)
		if err != nil {
			t.Fatalf("login with the bundle's credentials: %v", err)
		}
		tok := strings.TrimSpace(out)
		if secret := strings.TrimSpace(f.e.s.MustCLI(t, tok, "kv", "get", "-field=password", "kv/app/db")); secret != "db-secret-Vq72" {
			t.Fatalf("kv read with the bundle's login: %q", secret)
		}
		plain := base64.StdEncoding.EncodeToString([]byte("4242"))
		if ct := strings.TrimSpace(f.e.s.MustCLI(t, tok, "write", "-field=ciphertext", "transit/encrypt/payments", "plaintext="+plain)); !strings.HasPrefix(ct, "vault:v1:") {
			t.Fatalf("encrypt with the bundle's login: %q", ct)
		}
		alice.nav("My access")
		alice.waitText("main .list", "app-oncall (bundle)")
		alice.clean()
	})
}
