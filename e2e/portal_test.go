package e2e

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestPortalAccessFlow is issue 17's browser proof, step by step, in Debian's chromium.
func TestPortalAccessFlow(t *testing.T) {
	f := newPortalFixture(t)
	alice := f.newTab(t, "alice", f.portalURL())
	bob := f.newTab(t, "bob", f.portalURL())
	var requestID string
	step := func(name string, fn func(t *testing.T)) {
		if !t.Run(name, fn) {
			t.FailNow()
		}
	}
	retarget := func(tb *tab, t *testing.T) { tb.t = t }

	step("Vault serves the page and its files raw, unauthenticated, with no-store", func(t *testing.T) {
		checkRawFiles(t, f)
	})

	step("the browser gets the page with the listener's CSP", func(t *testing.T) {
		retarget(alice, t)
		resp, err := chromedp.Run(alice.ctx, chromedp.NavigateResponse(f.portalURL()))
		if err != nil {
			t.Fatal(err)
		}
		h := map[string]string{}
		for k, v := range resp.Headers {
			h[strings.ToLower(k)], _ = v.(string)
		}
		if h["content-security-policy"] != portalCSP || h["cache-control"] != "no-store" || h["content-type"] != "text/html; charset=utf-8" {
			t.Fatalf("headers seen by the browser: %v", h)
		}
		t.Logf("headers seen by the browser: content-type=%q cache-control=%q content-security-policy=%q x-content-type-options=%q referrer-policy=%q",
			h["content-type"], h["cache-control"], h["content-security-policy"], h["x-content-type-options"], h["referrer-policy"])
		alice.waitText("main h1", "Sign in")
		alice.shot("signin", "")
		alice.clean()
	})

	step("alice signs in with userpass; the token is in sessionStorage only", func(t *testing.T) {
		retarget(alice, t)
		// By keyboard only: the username field, Tab to the password (with a visible focus
		// ring), Enter submits.
		alice.do(chromedp.Focus(chromedp.CSS(`input[name="username"]`)), chromedp.KeyEvent("alice"), chromedp.KeyEvent("\t"))
		if !eval[bool](alice, `document.activeElement.name === 'password' && getComputedStyle(document.activeElement).outlineStyle !== 'none'`) {
			t.Fatalf("Tab from the username went to %q, without a visible focus", eval[string](alice, `document.activeElement.outerHTML`))
		}
		alice.do(chromedp.KeyEvent(f.people["alice"].password), chromedp.KeyEvent("\r"))
		alice.waitText("#user [data-who]", "alice")
		tok := alice.token()
		if tok == "" || tok != eval[string](alice, `sessionStorage.getItem('apono-portal-token')`) {
			t.Fatal("no token in sessionStorage")
		}
		if strings.Contains(eval[string](alice, `JSON.stringify(localStorage)`), tok) || strings.Contains(eval[string](alice, `document.cookie`), tok) {
			t.Fatal("the token is kept beyond sessionStorage")
		}
		lookup := f.e.jsonOut(t, tok, "token", "lookup")
		if meta, _ := lookup["data"].(map[string]interface{})["meta"].(map[string]interface{}); meta["username"] != "alice" {
			t.Fatalf("the page's token is not alice's: %v", lookup)
		}
		alice.clean()
	})

	step("alice is offered a PKI role, with its owner from the owners table", func(t *testing.T) {
		retarget(alice, t)
		alice.nav("Request access")
		alice.do(chromedp.Click(chromedp.CSS(`.role-choice input[value="web-certs"] + label`)))
		alice.waitText(".resource-list", "pki/issue/web")
		alice.waitText(".resource-list", "Owner: kv-owners (group)")
		alice.clean()
	})

	step("alice requests kv/app/db with a justification, seeing who will approve", func(t *testing.T) {
		retarget(alice, t)
		alice.nav("Request access")
		alice.do(chromedp.Click(chromedp.CSS(`.role-choice input[value="app-db"] + label`)))
		alice.waitText(".resource-list", "kv/app/db")
		alice.waitText(".resource-list", "Owner: kv-owners (group)")
		alice.do(chromedp.SendKeys(chromedp.CSS(`textarea[name="justification"]`), "INC-4242: rotate the db password"))
		alice.waitText(".preview", "owners of kv/app/db")
		alice.waitText(".preview", "kv-owners (group)")
		accessible(t, alice)
		alice.shot("request", ".roles")
		alice.do(chromedp.Click(chromedp.CSS(`.request-form button[type="submit"]`)))
		alice.waitText("main h1", "Request for app-db")
		alice.waitText("main", "Waiting for approval")
		alice.waitText("main", "Request sent. Asked to approve: kv-owners (group).")
		requestID = strings.TrimPrefix(eval[string](alice, `location.hash`), "#/requests/")
		if !regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(requestID) {
			t.Fatalf("after the request the page is at %q", requestID)
		}
		if got := f.e.jsonOut(t, "", "read", "apono/audit/requests/"+requestID)["data"].(map[string]interface{}); got["justification"] != "INC-4242: rotate the db password" || got["requester_name"] != "alice" {
			t.Fatalf("the request Vault holds: %v", got)
		}
		alice.clean()
	})

	step("bob, in a second browser context, sees it under To approve and approves with a reason", func(t *testing.T) {
		retarget(bob, t)
		// The link a chat message carries (portal_url's default ends in ui/) opens the
		// request once bob has signed in.
		bob.do(chromedp.Navigate(f.portalURL() + "/#/requests/" + requestID))
		bob.signIn(f.people["bob"])
		bob.waitText("main", "alice asks for")
		bob.waitText("main", "INC-4242: rotate the db password")
		if loc := eval[string](bob, `location.pathname + location.hash`); loc != "/v1/apono/ui#/requests/"+requestID {
			t.Fatalf("the chat link landed at %q", loc)
		}
		bob.nav("To approve")
		card := `[data-request="` + requestID + `"]`
		bob.waitText(card, "alice asks for app-db")
		for _, want := range []string{"INC-4242: rotate the db password", "kv/app/db", "read", "1 h", "kv-owners (group)", "0/1 approvals"} {
			bob.waitText(card, want)
		}
		bob.shot("approve", "")
		// The role needs a reason: without one the plugin refuses, and the page says why.
		bob.do(chromedp.Click(chromedp.JSPath(`[...document.querySelectorAll('` + card + ` button')].find((b) => b.textContent === 'Approve')`)))
		bob.waitText(card+" .alert-error", "reason")
		t.Logf("approve without a reason: the page shows %q", bob.text(card+" .alert-error"))
		bob.do(chromedp.SendKeys(chromedp.CSS(card+` textarea[name="reason"]`), "ok for INC-4242"))
		bob.do(chromedp.Click(chromedp.JSPath(`[...document.querySelectorAll('` + card + ` button')].find((b) => b.textContent === 'Approve')`)))
		bob.waitText(card, "You approved. The request is approved: alice can pick it up.")
		if s := f.status(t, requestID); s != "approved" {
			t.Fatalf("request status %q after bob's approval", s)
		}
		bob.clean()
	})

	step("carol, signed in with a pasted token, sees nothing to approve, and cannot open alice's request", func(t *testing.T) {
		carol := f.newTab(t, "carol", f.portalURL())
		carol.open("/approve")
		f.e.loginPerson(t, f.people["carol"])
		carol.signInWithToken(f.people["carol"].token, "carol")
		if carol.token() != f.people["carol"].token {
			t.Fatal("the page does not keep the token carol pasted")
		}
		if strings.Contains(eval[string](carol, `JSON.stringify(localStorage)`), f.people["carol"].token) {
			t.Fatal("the pasted token is kept in localStorage")
		}
		carol.waitText("main", "Nothing to approve")
		if n := eval[int](carol, `document.querySelectorAll('[data-request]').length`); n != 0 {
			t.Fatalf("carol sees %d requests to approve", n)
		}
		carol.do(chromedp.Evaluate[chromedp.Void](`location.hash = '#/requests/` + requestID + `'`))
		carol.waitText("main .alert-error", "is not yours to see")
		if msg := carol.text("main .alert-error"); !strings.HasPrefix(msg, "request "+requestID) {
			t.Fatalf("the page shows %q: the plugin's message, unwrapped, belongs there", msg)
		}
		t.Logf("carol opening alice's request: %q", carol.text("main .alert-error"))
		carol.clean()
	})

	var username, password string
	step("alice picks up and sees the credentials once; a login with them reads the secret", func(t *testing.T) {
		retarget(alice, t)
		alice.do(chromedp.Reload())
		alice.waitText("main", "Approved: ready to pick up")
		alice.waitText("main .approvals", "bob")
		alice.waitText("main .approvals", "ok for INC-4242")
		// The pickup deadline is pickup_ttl (1h) from the approval, not the request's wait.
		if !eval[bool](alice, `[...document.querySelectorAll('.fact')].some((f) => f.querySelector('dt').textContent === 'Time left to pick up' && new Date(f.querySelector('[data-until]').getAttribute('data-until')) - Date.now() < 3660e3)`) {
			t.Fatal("the request shows no pickup deadline within the hour")
		}
		alice.shot("request-detail", "")
		alice.nav("My requests")
		card := `[data-request="` + requestID + `"]`
		alice.waitText(card, "Approved: ready to pick up")
		alice.waitText(card, "bob")
		alice.shot("requests", "")
		alice.do(chromedp.Click(chromedp.JSPath(`[...document.querySelectorAll('` + card + ` button')].find((b) => b.textContent === 'Pick up')`)))
		alice.waitText(card+" .credentials", "Your access is ready")
		alice.waitText(card+" .credentials", "Shown once")
		username = alice.text(card + ` [data-cred="username"]`)
		password = eval[string](alice, `document.querySelector('`+card+` input.secret').value`)
		command := alice.text(card + ` [data-cred="command"]`)
		if want := "vault login -method=userpass -path=userpass username=" + username; command != want || username == "" || password == "" {
			t.Fatalf("command %q (want %q), username %q, password set %v", command, want, username, password != "")
		}
		alice.waitText(card+" .credentials", "Access ends")
		alice.waitText(card, "Picked up")
		alice.shot("pickup", card+" .credentials")
		// The command as the page gives it, with the password Vault would prompt for.
		args := strings.Fields(command)[2:]
		out, _, err := f.e.s.CLI("", append(append([]string{"login", "-no-store", "-token-only"}, args...), "password="+password)...)
		if err != nil {
			t.Fatalf("vault %s: %v", command, err)
		}
		secret, _, err := f.e.s.CLI(strings.TrimSpace(out), "kv", "get", "-field=password", "kv/app/db")
		if err != nil || strings.TrimSpace(secret) != "db-secret-Vq72" {
			t.Fatalf("reading kv/app/db with the grant: %q %v", secret, err)
		}
		alice.do(chromedp.Reload())
		alice.waitText(card, "Picked up")
		if n := eval[int](alice, `document.querySelectorAll('.credentials').length`); n != 0 || strings.Contains(alice.text("body"), password) {
			t.Fatal("after a reload the page shows the credentials again")
		}
		alice.clean()
	})

	step("My access lists the live grant with its end time", func(t *testing.T) {
		retarget(alice, t)
		alice.nav("My access")
		alice.waitText("main .list", "app-db")
		for _, want := range []string{"kv/app/db", username, "Ends", "in 59 min"} {
			alice.waitText("main .list", want)
		}
		alice.shot("access", "")
		alice.clean()
	})

	var hostileID string
	erin := f.newTab(t, "erin", f.portalURL())
	step("hostile strings run nothing, and a denial shows its reason to alice", func(t *testing.T) {
		retarget(alice, t)
		alice.nav("Request access")
		alice.do(chromedp.Click(chromedp.CSS(`.role-choice input[value="imports"] + label`)))
		alice.waitText(".resource-list", "kv/imports/*")
		// The owner tag, a group name holding markup, is shown as the approver, as text.
		alice.waitText(".resource-list", hostileImg+" (group)")
		if !eval[bool](alice, `document.querySelector('.resource-list input[value="kv/imports/*"]').checked`) {
			alice.do(chromedp.Click(chromedp.CSS(`.resource-list input[value="kv/imports/*"]`)))
		}
		alice.do(chromedp.SendKeys(chromedp.CSS(`textarea[name="justification"]`), hostileScript+" "+hostileImg))
		alice.waitText(".preview", hostileImg+" (group)")
		alice.clean()
		alice.do(chromedp.Click(chromedp.CSS(`.request-form button[type="submit"]`)))
		alice.waitText("main h1", "Request for imports")
		hostileID = strings.TrimPrefix(eval[string](alice, `location.hash`), "#/requests/")
		// The secret's name, which no role can hold, is in the request's notes.
		alice.waitText("main", `kv/imports/`+hostileImg[:len(`<img src=x onerror=`)])
		alice.clean()

		retarget(erin, t)
		erin.open("/approve")
		erin.signIn(f.people["erin"])
		card := `[data-request="` + hostileID + `"]`
		erin.waitText(card, hostileScript+" "+hostileImg)
		erin.waitText(card, hostileImg+" (group)")
		erin.clean()
		erin.do(chromedp.SendKeys(chromedp.CSS(card+` textarea[name="reason"]`), "no: "+hostileImg+" "+hostileScript))
		erin.do(chromedp.Click(chromedp.JSPath(`[...document.querySelectorAll('` + card + ` button')].find((b) => b.textContent === 'Deny')`)))
		erin.waitText(card, "You denied the request. alice sees your reason.")
		erin.clean()

		retarget(alice, t)
		alice.do(chromedp.Reload())
		alice.waitText("main", "Denied")
		alice.waitText("main", "Reason for denial")
		alice.waitText("main", "no: "+hostileImg+" "+hostileScript)
		alice.waitText("main", "erin")
		alice.shot("denied", "")
		alice.clean()

		// Without the CSP (the dev listener sets none) the page itself still runs nothing.
		bare := f.newTab(t, "alice without CSP", f.plain+"/v1/apono/ui")
		bare.open("/requests/" + hostileID)
		bare.signIn(f.people["alice"])
		bare.waitText("main", "no: "+hostileImg+" "+hostileScript)
		bare.waitText("main", hostileScript+" "+hostileImg)
		bare.clean()
	})

	step("My requests comes a page at a time: Load more shows the rest, each once", func(t *testing.T) {
		retarget(alice, t)
		c, err := f.e.s.Client.Clone()
		if err != nil {
			t.Fatal(err)
		}
		c.SetToken(alice.token())
		// 20 more requests, cancelled at once (max_open_requests counts open ones only).
		for i := range 20 {
			r, err := c.Logical().Write("apono/requests/app-db", map[string]interface{}{"justification": fmt.Sprintf("paging %02d", i)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Logical().Write("apono/requests/"+r.Data["id"].(string)+"/cancel", nil); err != nil {
				t.Fatal(err)
			}
		}
		alice.nav("My requests")
		alice.waitFor(`document.querySelectorAll('main [data-request]').length === 20`, "a first page of 20")
		alice.waitText("main .more", "Load more")
		alice.do(chromedp.Click(chromedp.JSPath(`[...document.querySelectorAll('main .more button')].find((b) => b.textContent === 'Load more')`)))
		alice.waitFor(`document.querySelectorAll('main [data-request]').length === 22`, "the second page")
		ids := eval[[]string](alice, `[...document.querySelectorAll('main [data-request]')].map((n) => n.getAttribute('data-request'))`)
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("request %s is listed twice", id)
			}
			seen[id] = true
		}
		if !seen[requestID] || !seen[hostileID] || eval[int](alice, `document.querySelectorAll('main .more button').length`) != 0 {
			t.Fatalf("after Load more: %d requests, the first two there: %v %v", len(ids), seen[requestID], seen[hostileID])
		}
		alice.clean()
	})

	step("sign-out revokes the token", func(t *testing.T) {
		retarget(alice, t)
		tok := alice.token()
		alice.do(chromedp.Click(chromedp.JSPath(`[...document.querySelectorAll('#user button')].find((b) => b.textContent === 'Sign out')`)))
		alice.waitText("main", "You are signed out, and your Vault token was revoked.")
		if alice.token() != "" {
			t.Fatal("the page still holds a token")
		}
		stderr := f.e.mustFail(t, tok, "token", "lookup")
		if !strings.Contains(stderr, "Code: 403") {
			t.Fatalf("lookup-self with the signed-out token: %s", stderr)
		}
		alice.clean()
	})

	step("an OIDC sign-in through Vault's OIDC auth method lands in the portal as that person", func(t *testing.T) {
		idp := newOIDCProvider(t, "olivia")
		f.e.root(t, "auth", "enable", "oidc")
		f.e.root(t, "write", "auth/oidc/config", "oidc_discovery_url="+idp.issuer(), "oidc_client_id="+idp.clientID,
			"oidc_client_secret="+idp.clientSecret, "default_role=people")
		f.e.root(t, "write", "auth/oidc/role/people", "role_type=oidc", "user_claim=sub", "oidc_scopes=email",
			"allowed_redirect_uris="+f.portalURL(), "token_policies=access-requester,access-approver", "token_ttl=10m")
		olivia := f.newTab(t, "olivia", f.portalURL())
		olivia.open("/requests")
		olivia.waitText("main h1", "Sign in")
		olivia.do(chromedp.Click(chromedp.CSS(`.segments label[for$="-oidc"]`)))
		olivia.do(chromedp.Click(chromedp.CSS(`form:not([hidden]) button[type="submit"]`)))
		olivia.waitText("#user [data-who]", "olivia")
		olivia.waitText("main h1", "My requests")
		olivia.waitText("main", "No requests yet")
		if a, n := idp.counts(); a != 1 || n != 1 {
			t.Fatalf("the provider answered %d sign-ins and %d token requests, want 1 and 1", a, n)
		}
		if search := eval[string](olivia, `location.search`); search != "" {
			t.Fatalf("the code stays in the address: %q", search)
		}
		lookup := f.e.jsonOut(t, olivia.token(), "token", "lookup")["data"].(map[string]interface{})
		if lookup["entity_id"] == "" || !strings.HasPrefix(lookup["path"].(string), "auth/oidc/") {
			t.Fatalf("the page's token: %v", lookup)
		}
		olivia.clean()
	})
}

// accessible checks what keyboard and screen-reader use need on the page as it is: every
// form control has a label, nothing but buttons and links takes clicks, and every button
// says what it does.
func accessible(t *testing.T, tb *tab) {
	t.Helper()
	if bad := eval[[]string](tb, `[...document.querySelectorAll('input, select, textarea')].filter((e) => !e.labels || e.labels.length === 0).map((e) => e.outerHTML)`); len(bad) > 0 {
		t.Fatalf("controls without a label: %v", bad)
	}
	if bad := eval[[]string](tb, `[...document.querySelectorAll('[onclick], [role="button"], div[tabindex], span[tabindex]')].map((e) => e.outerHTML)`); len(bad) > 0 {
		t.Fatalf("clickable elements that are not buttons: %v", bad)
	}
	if bad := eval[[]string](tb, `[...document.querySelectorAll('button')].filter((b) => !b.textContent.trim() || !b.type).map((b) => b.outerHTML)`); len(bad) > 0 {
		t.Fatalf("buttons without a label: %v", bad)
	}
}

// status reads the request as an operator does.
func (f *portalFixture) status(t *testing.T, id string) string {
	t.Helper()
	v := f.e.jsonOut(t, "", "read", "apono/audit/requests/"+id)
	s, _ := v["data"].(map[string]interface{})["status"].(string)
	return s
}

// checkRawFiles checks, with a plain HTTP client, what the browser gets: the page and its
// files as raw responses with Cache-Control: no-store and the listener's CSP, a 404 for
// anything else, and the CSP only where the listener sets it.
func checkRawFiles(t *testing.T, f *portalFixture) {
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
	get := func(url string) (*http.Response, string) {
		t.Helper()
		resp, err := noRedirect.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"ui", "text/html; charset=utf-8", `<script type="module" src="ui/app.js">`},
		{"ui/app.js", "text/javascript; charset=utf-8", "import "},
		{"ui/style.css", "text/css; charset=utf-8", ":root"},
		{"ui/icon.svg", "image/svg+xml", "<svg"},
	} {
		resp, body := get(f.cspURL + "/v1/apono/" + tc.path)
		switch {
		case resp.StatusCode != http.StatusOK:
			t.Fatalf("%s: HTTP %d: %s", tc.path, resp.StatusCode, body)
		case resp.Header.Get("Content-Type") != tc.contentType:
			t.Fatalf("%s: Content-Type %q", tc.path, resp.Header.Get("Content-Type"))
		case resp.Header.Get("Cache-Control") != "no-store":
			t.Fatalf("%s: Cache-Control %q", tc.path, resp.Header.Get("Cache-Control"))
		case resp.Header.Get("Content-Security-Policy") != portalCSP:
			t.Fatalf("%s: Content-Security-Policy %q", tc.path, resp.Header.Get("Content-Security-Policy"))
		case !strings.Contains(body, tc.contains):
			t.Fatalf("%s: body lacks %q", tc.path, tc.contains)
		}
		t.Logf("GET /v1/apono/%s: %d, Content-Type %s, Cache-Control %s, X-Content-Type-Options %s",
			tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"), resp.Header.Get("X-Content-Type-Options"))
	}
	for _, path := range []string{"ui/nope.js", "ui/static/app.js", "ui/portal.go"} {
		if resp, body := get(f.cspURL + "/v1/apono/" + path); resp.StatusCode != http.StatusNotFound || strings.Contains(body, "<") {
			t.Fatalf("%s: HTTP %d %q, want a plain 404", path, resp.StatusCode, body)
		}
	}
	// Dot segments never reach the plugin as a file name: the server cleans the path and
	// redirects (Vault: Go's 301; the plugin's own 307 for ui/) or refuses it (OpenBao: 400).
	for _, path := range []string{"ui/..%2fconfig", "ui/.", "ui/%2e%2e/config"} {
		if resp, body := get(f.cspURL + "/v1/apono/" + path); resp.StatusCode < 300 {
			t.Fatalf("%s: HTTP %d %q, want a redirect or a refusal", path, resp.StatusCode, body)
		}
	}
	if resp, _ := get(f.cspURL + "/v1/apono/ui/"); resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "/v1/apono/ui" {
		t.Fatalf("ui/: HTTP %d to %q, want a redirect to /v1/apono/ui", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Vault sets no header of its own from a raw response: on the dev listener, without
	// custom_response_headers, there is no CSP.
	if resp, _ := get(f.plain + "/v1/apono/ui"); resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Security-Policy") != "" {
		t.Fatalf("dev listener: HTTP %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	// No token needed, and none is given to the page: the page is the same for everyone.
	if resp, _ := get(f.cspURL + "/v1/apono/config"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("config without a token: HTTP %d, want 403 (only ui is unauthenticated)", resp.StatusCode)
	}
}
