package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// Issue 23's attacks on the portal (items 4, 11 and 12), each performed against a real
// Vault and, where the page is the target, in Debian's chromium.

// portalGet is an anonymous GET of a portal URL (no token), with extra headers.
func portalGet(t *testing.T, rawURL string, headers map[string]string) (status int, h http.Header, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	client := &http.Client{Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// tokenAccessors lists every token accessor, as root.
func (e *env) tokenAccessors(t *testing.T) []string {
	t.Helper()
	s, err := e.s.Client.Logical().List("auth/token/accessors")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if s != nil {
		keys, _ := s.Data["keys"].([]interface{})
		for _, k := range keys {
			out = append(out, k.(string))
		}
	}
	sort.Strings(out)
	return out
}

// newWrappingTokens are the accessors, among those not in before, of response-wrapping tokens.
func (e *env) newWrappingTokens(t *testing.T, before []string) []string {
	t.Helper()
	old := map[string]bool{}
	for _, a := range before {
		old[a] = true
	}
	var out []string
	for _, a := range e.tokenAccessors(t) {
		if old[a] {
			continue
		}
		s, err := e.s.Client.Logical().Write("auth/token/lookup-accessor", map[string]interface{}{"accessor": a})
		if err != nil {
			continue // ended since the list
		}
		if policies, _ := s.Data["policies"].([]interface{}); len(policies) == 1 && policies[0] == "response-wrapping" {
			out = append(out, a)
		}
	}
	return out
}

// TestAttackPortalRefusesWrappedRequests: anyone without a token asks for the portal's
// page and files with X-Vault-Wrap-TTL: 768h. Before the fix Vault wrapped each answer:
// a new 32-day token and a stored copy of the file per request. Now each gets a 400 that
// names the header, and Vault holds not one token more.
func TestAttackPortalRefusesWrappedRequests(t *testing.T) {
	// A Vault of the test's own: the count of all token accessors is exact only where no
	// other test makes tokens meanwhile.
	e := ownVault(t, testvault.Options{})
	base := e.s.URL() + "/v1/apono/"

	// The detector works: a wrapped answer Vault may make (root wrapping a value) shows up
	// as one more accessor, of a response-wrapping token.
	before := e.tokenAccessors(t)
	if _, err := e.s.Client.Logical().Write("sys/wrapping/wrap", map[string]interface{}{"probe": "x"}); err != nil {
		t.Fatal(err)
	}
	if got := e.newWrappingTokens(t, before); len(got) != 1 {
		t.Fatalf("after one wrap the detector sees %d new response-wrapping tokens, want 1", len(got))
	}

	before = e.tokenAccessors(t)
	files := []string{"ui", "ui/app.js", "ui/style.css", "ui/index.html", "ui/", "ui/missing.js"}
	requests := 0
	for round := 0; requests < 24; round++ {
		for _, f := range files {
			headers := map[string]string{"X-Vault-Wrap-TTL": "768h"}
			if round%2 == 1 {
				headers["X-Vault-Wrap-Format"] = "jwt"
			}
			status, h, body := portalGet(t, base+f, headers)
			requests++
			if status != http.StatusBadRequest {
				t.Fatalf("wrapped GET %s (no token): %d %s, want 400", f, status, body)
			}
			var out struct {
				Errors   []string               `json:"errors"`
				WrapInfo map[string]interface{} `json:"wrap_info"`
			}
			if err := json.Unmarshal([]byte(body), &out); err != nil || len(out.Errors) != 1 || out.WrapInfo != nil {
				t.Fatalf("wrapped GET %s: body %s", f, body)
			}
			if !strings.Contains(out.Errors[0], "X-Vault-Wrap-TTL") || h.Get("Content-Type") != "application/json" {
				t.Fatalf("wrapped GET %s: %q (%s); the refusal must name the header", f, out.Errors[0], h.Get("Content-Type"))
			}
		}
	}
	// With a token as well: the path is the same unauthenticated path, refused the same.
	if status, _, body := portalGet(t, base+"ui", map[string]string{"X-Vault-Wrap-TTL": "768h", "X-Vault-Token": e.s.RootToken}); status != http.StatusBadRequest {
		t.Fatalf("wrapped GET ui with a token: %d %s", status, body)
	}
	after := e.tokenAccessors(t)
	if len(after) != len(before) {
		t.Fatalf("%d wrapped anonymous requests: token accessors %d -> %d, want no new token", requests+1, len(before), len(after))
	}
	if got := e.newWrappingTokens(t, before); len(got) != 0 {
		t.Fatalf("%d new response-wrapping tokens", len(got))
	}
	t.Logf("%d wrapped anonymous requests: 400 each, token accessors %d before and %d after", requests+1, len(before), len(after))

	// Without the header the page and its files still load.
	for _, f := range []string{"ui", "ui/app.js", "ui/signin.js"} {
		status, h, body := portalGet(t, base+f, nil)
		if status != http.StatusOK || h.Get("Cache-Control") != "no-store" || len(body) < 100 {
			t.Fatalf("GET %s: %d %v (%d bytes)", f, status, h, len(body))
		}
	}
	if status, h, _ := portalGet(t, base+"ui/", nil); status != http.StatusTemporaryRedirect || h.Get("Location") != "/v1/apono/ui" {
		t.Fatalf("GET ui/: %d, Location %q", status, h.Get("Location"))
	}
}

// TestAttackPortalRateLimitQuota is the README's advice against a flood of anonymous page
// loads, on a real Vault: a rate-limit quota on <mount>/ui* answers 429 past its rate, for
// the page and its files, and leaves other mounts' portals alone.
func TestAttackPortalRateLimitQuota(t *testing.T) {
	e := shared
	mount := "apono-portal-quota"
	e.root(t, "secrets", "enable", "-path="+mount, "-plugin-version="+e.setup.Version, testvault.PluginName)
	t.Cleanup(func() { _, _, _ = e.s.CLI("", "secrets", "disable", mount) })
	// The command the README gives, with the glob that covers ui and ui/<file>.
	e.root(t, "write", "sys/quotas/rate-limit/"+mount, "path="+mount+"/ui*", "rate=5", "interval=1m")
	t.Cleanup(func() { _, _, _ = e.s.CLI("", "delete", "sys/quotas/rate-limit/"+mount) })
	q := e.jsonOut(t, "", "read", "sys/quotas/rate-limit/"+mount)["data"].(map[string]interface{})
	if q["path"] != mount+"/ui*" {
		t.Fatalf("the quota Vault holds: %v", q)
	}

	codes := map[string][]int{}
	for range 8 {
		for _, f := range []string{"ui", "ui/app.js"} {
			status, _, _ := portalGet(t, e.s.URL()+"/v1/"+mount+"/"+f, nil)
			codes[f] = append(codes[f], status)
		}
	}
	limited := 0
	for _, f := range []string{"ui", "ui/app.js"} {
		if codes[f][0] != http.StatusOK {
			t.Fatalf("the first GET %s: %d", f, codes[f][0])
		}
		if last := codes[f][len(codes[f])-1]; last != http.StatusTooManyRequests {
			t.Fatalf("GET %s past the rate: %v, want 429 at the end", f, codes[f])
		}
		for _, c := range codes[f] {
			if c == http.StatusTooManyRequests {
				limited++
			}
		}
	}
	// The quota is the mount's: the shared mount's portal still loads.
	if status, _, _ := portalGet(t, e.s.URL()+"/v1/apono/ui", nil); status != http.StatusOK {
		t.Fatalf("apono/ui under another mount's quota: %d", status)
	}
	t.Logf("16 anonymous GETs of %s/ui and ui/app.js with rate=5 per minute: %d answered 429 (%v)", mount, limited, codes)
}

// TestAttackPortalNeverEchoesErrorDescription: a link to <mount>/ui?error=...&
// error_description=<text> would have shown the sender's words on Vault's own origin.
// Now the page says fixed text: for a return this tab did not start, and for a real
// sign-in an identity provider refuses (with at most a registered OAuth error code).
func TestAttackPortalNeverEchoesErrorDescription(t *testing.T) {
	e := shared
	f := &portalFixture{e: e, browser: startBrowser(t), shots: t.TempDir()}
	portal := e.s.URL() + "/v1/apono/ui"
	const evil = "Sign in again at https://evil.example"
	noEvil := func(tb *tab, where string) {
		t.Helper()
		body := tb.text("body")
		title := eval[string](tb, `document.title`)
		for _, bad := range []string{"evil.example", "Sign in again at", "Sign_in_again"} {
			if strings.Contains(body, bad) || strings.Contains(title, bad) {
				t.Fatalf("%s: the page shows the attacker's text %q:\n%s", where, bad, body)
			}
		}
		if search := eval[string](tb, `location.search`); search != "" {
			t.Fatalf("%s: the address keeps %q", where, search)
		}
	}

	t.Run("a link with a refusal this tab did not start", func(t *testing.T) {
		victim := f.newTab(t, "victim", portal)
		for _, q := range []string{
			"?error=access_denied&error_description=" + url.QueryEscape(evil),
			"?error=" + url.QueryEscape("Sign_in_again_at_evil_example") + "&error_description=" + url.QueryEscape(evil) + "&state=x",
		} {
			victim.do(chromedp.Navigate(portal + q))
			victim.waitText("main h1", "Sign in")
			victim.waitText("main .alert-error", "This sign-in was not started from this tab; start it again.")
			noEvil(victim, q)
			if n := eval[int](victim, `document.querySelectorAll('main .alert').length`); n != 1 {
				t.Fatalf("%s: %d alerts", q, n)
			}
			victim.clean()
		}
	})

	t.Run("a sign-in this tab started, refused by the identity provider", func(t *testing.T) {
		// An identity provider that refuses every sign-in, with a hostile description (and,
		// the second time, a hostile code): what a compromised or malicious provider, or a
		// link raced into a started sign-in, can send.
		idp := newOIDCProvider(t, "mallory")
		refusal := []string{"access_denied", "Sign_in_again_at_evil_example"}
		var answered int
		mux := http.NewServeMux()
		mux.HandleFunc("/.well-known/openid-configuration", idp.discovery)
		mux.HandleFunc("/jwks", idp.jwks)
		mux.HandleFunc("/authorize", func(w http.ResponseWriter, r *http.Request) {
			back, err := url.Parse(r.URL.Query().Get("redirect_uri"))
			if err != nil || !strings.HasPrefix(back.String(), portal) {
				http.Error(w, "bad redirect_uri", http.StatusBadRequest)
				return
			}
			idp.mu.Lock()
			code := refusal[answered%len(refusal)]
			answered++
			idp.mu.Unlock()
			v := url.Values{"error": {code}, "error_description": {evil}, "state": {r.URL.Query().Get("state")}}
			back.RawQuery = v.Encode()
			http.Redirect(w, r, back.String(), http.StatusFound)
		})
		idp.srv.Config.Handler = mux // before Vault first reads the discovery document

		authMount := "oidc-portal-refusal"
		e.root(t, "auth", "enable", "-path="+authMount, "oidc")
		t.Cleanup(func() { _, _, _ = e.s.CLI("", "auth", "disable", authMount) })
		e.root(t, "write", "auth/"+authMount+"/config", "oidc_discovery_url="+idp.issuer(), "oidc_client_id="+idp.clientID,
			"oidc_client_secret="+idp.clientSecret, "default_role=people")
		e.root(t, "write", "auth/"+authMount+"/role/people", "role_type=oidc", "user_claim=sub",
			"allowed_redirect_uris="+portal, "token_ttl=5m")

		victim := f.newTab(t, "victim", portal)
		victim.open("/requests")
		for i, want := range []string{
			"The identity provider refused the sign-in (access_denied). Start it again, or ask your Vault operator.",
			"The identity provider refused the sign-in. Start it again, or ask your Vault operator.",
		} {
			victim.waitText("main h1", "Sign in")
			victim.do(chromedp.Click(chromedp.CSS(`.segments label[for$="-oidc"]`)))
			victim.do(
				chromedp.SetValue(chromedp.CSS(`form:not([hidden]) input[name="oidc-mount"]`), authMount),
				chromedp.Click(chromedp.CSS(`form:not([hidden]) button[type="submit"]`)),
			)
			victim.waitText("main .alert-error", want)
			noEvil(victim, fmt.Sprintf("refusal %d", i+1))
			idp.mu.Lock()
			n := answered
			idp.mu.Unlock()
			if n != i+1 {
				t.Fatalf("the provider answered %d sign-ins, want %d: the page never went through it", n, i+1)
			}
			if victim.token() != "" {
				t.Fatal("a refused sign-in left a token")
			}
			victim.clean()
		}
	})
}

// childFrames are the frames right below the tab's top frame.
func childFrames(tb *tab) []*cdp.Frame {
	tb.t.Helper()
	tree, err := chromedp.Call(tb.ctx, page.GetFrameTree, cdp.Empty{})
	if err != nil {
		tb.t.Fatal(err)
	}
	var out []*cdp.Frame
	for _, c := range tree.FrameTree.ChildFrames {
		out = append(out, c.Frame)
	}
	return out
}

// evalInFrame evaluates expr (which must give a string) in an isolated world of a frame:
// it reads the frame's own DOM, whatever its origin.
func evalInFrame(tb *tab, frame cdp.FrameID, expr string) (string, error) {
	world, err := chromedp.Call(tb.ctx, page.CreateIsolatedWorld, page.CreateIsolatedWorldParams{FrameID: frame, WorldName: "attack-check"})
	if err != nil {
		return "", err
	}
	returnByValue := true
	res, err := chromedp.Call(tb.ctx, runtime.Evaluate, runtime.EvaluateParams{Expression: expr, ContextID: world.ExecutionContextID, ReturnByValue: &returnByValue})
	if err != nil {
		return "", err
	}
	if res.ExceptionDetails != nil {
		return "", fmt.Errorf("%s", res.ExceptionDetails.Text)
	}
	var s string
	if err := json.Unmarshal([]byte(res.Result.Value), &s); err != nil {
		return "", fmt.Errorf("result %s: %v", res.Result.Value, err)
	}
	return s, nil
}

// framer serves, on another loopback origin, a page that frames target: the attacker's site.
func framer(t *testing.T, target string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>Win a prize</title><p>Click the button!</p><iframe id="victim" src=%q width="1000" height="700"></iframe>`, target)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestAttackPortalRefusesToRenderInAFrame: a site of the attacker's frames the portal to
// lay its own content over it (clickjacking). On a listener and mount with no headers
// (the default), the page inside the frame shows only a notice: no sign-in form, nothing
// to click. On a mount whose allowed_response_headers let the plugin's X-Frame-Options
// and frame-ancestors through, chromium does not load the frame at all.
func TestAttackPortalRefusesToRenderInAFrame(t *testing.T) {
	e := shared
	f := &portalFixture{e: e, browser: startBrowser(t), shots: t.TempDir()}
	portal := e.s.URL() + "/v1/apono/ui"

	t.Run("the page in a frame renders a notice and no sign-in", func(t *testing.T) {
		// Vault drops the plugin's headers on an untuned mount: the browser gets none.
		_, h, _ := portalGet(t, portal, nil)
		if h.Get("X-Frame-Options") != "" || h.Get("Content-Security-Policy") != "" {
			t.Fatalf("an untuned mount's page came with framing headers %v: this part would not test the page's own refusal", h)
		}
		// Control: on its own the same page shows the sign-in form.
		own := f.newTab(t, "own tab", portal)
		own.open("/requests")
		own.waitText("main h1", "Sign in")
		if n := eval[int](own, `document.querySelectorAll('main form, main input').length`); n == 0 {
			t.Fatal("the page on its own shows no form: the frame check below would prove nothing")
		}

		victim := f.newTab(t, "victim", "")
		victim.do(chromedp.Navigate(framer(t, portal+"#/requests")))
		const probe = `JSON.stringify({
			framed: !!document.querySelector('[data-framed]'),
			forms: document.querySelectorAll('form, input, button, select, textarea').length,
			nav: document.getElementById('nav') ? document.getElementById('nav').hidden : null,
			text: document.body ? document.body.innerText : '',
			url: location.href,
			token: sessionStorage.getItem('apono-portal-token') || ''
		})`
		var got struct {
			Framed bool
			Forms  int
			Nav    *bool
			Text   string
			URL    string
			Token  string
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			frames := childFrames(victim)
			if len(frames) == 1 && strings.HasPrefix(frames[0].URL, portal) {
				if s, err := evalInFrame(victim, frames[0].ID, probe); err == nil {
					if err := json.Unmarshal([]byte(s), &got); err != nil {
						t.Fatal(err)
					}
					if got.Framed {
						break
					}
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the framed portal never showed its notice; frames %v, last seen %+v", frames, got)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if got.Forms != 0 || got.Nav == nil || !*got.Nav || got.Token != "" {
			t.Fatalf("inside the frame: %+v, want no form control, the nav hidden and no token", got)
		}
		for _, want := range []string{"Open the access portal in its own tab", "does not sign in"} {
			if !strings.Contains(got.Text, want) {
				t.Fatalf("inside the frame the page shows:\n%s\nwant %q", got.Text, want)
			}
		}
		if strings.Contains(got.Text, "Sign in\n") || strings.Contains(got.Text, "Password") {
			t.Fatalf("inside the frame the page shows a sign-in:\n%s", got.Text)
		}
		t.Logf("inside the frame: %q", got.Text)
	})

	t.Run("a mount that lets the plugin's headers through is not framed at all", func(t *testing.T) {
		mount := "apono-portal-frames"
		e.root(t, "secrets", "enable", "-path="+mount, "-plugin-version="+e.setup.Version, testvault.PluginName)
		t.Cleanup(func() { _, _, _ = e.s.CLI("", "secrets", "disable", mount) })
		// The README's command.
		e.root(t, "secrets", "tune", "-allowed-response-headers=X-Frame-Options",
			"-allowed-response-headers=Content-Security-Policy", mount)
		target := e.s.URL() + "/v1/" + mount + "/ui"
		for _, file := range []string{"ui", "ui/app.js"} {
			_, h, _ := portalGet(t, e.s.URL()+"/v1/"+mount+"/"+file, nil)
			if h.Get("X-Frame-Options") != "DENY" || h.Get("Content-Security-Policy") != "frame-ancestors 'none'" {
				t.Fatalf("GET %s on the tuned mount: headers %v", file, h)
			}
		}
		victim := f.newTab(t, "victim", "")
		victim.do(chromedp.Navigate(framer(t, target)))
		deadline := time.Now().Add(30 * time.Second)
		var frames []*cdp.Frame
		for {
			frames = childFrames(victim)
			if len(frames) == 1 && frames[0].UnreachableURL != "" {
				break
			}
			if time.Now().After(deadline) {
				for _, fr := range frames {
					t.Logf("frame %s url=%q unreachable=%q", fr.ID, fr.URL, fr.UnreachableURL)
				}
				t.Fatal("chromium loaded the framed portal despite X-Frame-Options: DENY")
			}
			time.Sleep(100 * time.Millisecond)
		}
		fr := frames[0]
		if !strings.HasPrefix(fr.UnreachableURL, target) || strings.HasPrefix(fr.URL, target) {
			t.Fatalf("the frame: url=%q unreachable=%q", fr.URL, fr.UnreachableURL)
		}
		if s, err := evalInFrame(victim, fr.ID, `String(document.querySelectorAll('[data-framed], form, input').length)`); err == nil && s != "0" {
			t.Fatalf("the blocked frame holds %s portal elements", s)
		}
		t.Logf("chromium refused the frame: url=%q unreachable=%q", fr.URL, fr.UnreachableURL)
	})
}
