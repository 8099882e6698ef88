package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/apono-io/vault-plugin-apono/internal/testvault"
)

// The portal's browser tests run Debian's chromium (headless) against a Vault of their
// own whose second listener sets the Content-Security-Policy the README gives: the page
// must work under it, and hostile data must run nothing with or without it.

// portalCSP is the Content-Security-Policy the README tells operators to set on the
// listener that serves the portal.
const portalCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

var portalScreenshots = flag.Bool("portal.screenshots", false,
	"write the portal's screenshots to docs/ (the README shows them); without it they go to a temporary folder")

// Hostile strings stored in Vault: each would change the page's title if the page ever
// parsed a value from Vault as markup (or the browser ran it).
const (
	hostileImg    = `<img src=x onerror="document.title='pwned'">`
	hostileScript = `"><script>document.title='pwned'</script>`
)

type portalFixture struct {
	e       *env
	cspURL  string // the listener with the CSP: http://127.0.0.1:<port>
	plain   string // the dev listener, without any custom header
	people  map[string]*person
	browser context.Context
	shots   string // where screenshots go
}

// portalListener is the extra listener block of the test's Vault: the README's headers.
func portalListener(addr, clusterAddr string) string {
	return fmt.Sprintf(`listener "tcp" {
  address         = %q
  cluster_address = %q
  tls_disable     = true
  custom_response_headers {
    "default" = {
      "Content-Security-Policy" = [%q]
      "X-Content-Type-Options"  = ["nosniff"]
      "Referrer-Policy"         = ["no-referrer"]
    }
  }
}
`, addr, clusterAddr, portalCSP)
}

func freeLoopbackPorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// newPortalFixture starts the Vault, the people, the owners, the secrets and the roles,
// and the browser.
func newPortalFixture(t *testing.T) *portalFixture {
	t.Helper()
	browser := startBrowser(t) // first: a missing chromium fails before Vault starts
	ports := freeLoopbackPorts(t, 2)
	cspAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	e := ownVault(t, testvault.Options{Config: portalListener(cspAddr, fmt.Sprintf("127.0.0.1:%d", ports[1]))})
	f := &portalFixture{e: e, cspURL: "http://" + cspAddr, plain: e.s.URL(), people: map[string]*person{}, browser: browser}
	f.shots = t.TempDir()
	if *portalScreenshots {
		root, err := testvault.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		f.shots = filepath.Join(root, "docs")
		if err := os.MkdirAll(f.shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// A PKI mount too: the portal offers its roles, with their owners from the owners
	// table. The plugin's AppRole gets the engine additions (docs/operations.md).
	e.root(t, "secrets", "enable", "pki")
	e.root(t, "write", "pki/root/generate/internal", "common_name=portal-test-ca", "ttl=24h")
	e.root(t, "write", "pki/roles/web", "allowed_domains=example.test", "allow_subdomains=true", "max_ttl=1h")
	e.writePolicy(t, "plugin-engines", testdataFile(t, "apono-engines.hcl"))
	e.root(t, "write", "auth/approle/role/"+testvault.AppRoleName, "token_policies="+testvault.PolicyName+",plugin-engines")
	e.root(t, "write", "apono/config", "owner_metadata_key=owner", "integration_owner=security",
		"role_id="+e.setup.RoleID, "secret_id="+e.setup.SecretID)
	// The README's policies, and nothing more: they are what the portal needs.
	e.writePolicy(t, "access-requester", testdataFile(t, "access-requester.hcl"))
	e.writePolicy(t, "access-approver", testdataFile(t, "access-approver.hcl"))
	for _, name := range []string{"alice", "bob", "carol", "dave", "erin"} {
		f.people[name] = e.person(t, name, "access-requester", "access-approver")
	}
	e.root(t, "write", "identity/group", "name=kv-owners", "member_entity_ids="+f.people["bob"].entityID+","+f.people["dave"].entityID)
	e.root(t, "write", "identity/group", "name=security", "member_entity_ids="+f.people["erin"].entityID)

	// kv/app/db is owned by kv-owners. Below kv/imports/, one secret's owner tag and another
	// secret's name are hostile; the name is no name a role could hold, so
	// integration_owner (security) approves the folder as well.
	e.root(t, "kv", "put", "kv/app/db", "password=db-secret-Vq72")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner=kv-owners", "kv/app/db")
	c := e.s.Client
	for _, w := range []struct {
		path string
		data map[string]interface{}
	}{
		{"kv/data/imports/tagged", map[string]interface{}{"data": map[string]interface{}{"v": "1"}}},
		{"kv/metadata/imports/tagged", map[string]interface{}{"custom_metadata": map[string]interface{}{"owner": "group:" + hostileImg}}},
		{"kv/data/imports/" + hostileImg, map[string]interface{}{"data": map[string]interface{}{"v": "2"}}},
	} {
		if _, err := c.Logical().Write(w.path, w.data); err != nil {
			t.Fatalf("writing %s: %v", w.path, err)
		}
	}
	e.root(t, "write", "apono/owners/pki/*", "approvers=group:kv-owners")
	e.root(t, "write", "-f", "apono/sync")
	e.root(t, "write", "apono/roles/web-certs", "resources=pki/issue/web", "ttl=30m", "approval=required", "approvers=owner")
	e.root(t, "write", "apono/roles/app-db", "resources=kv/app/db", "permissions=read", "ttl=1h", "max_ttl=4h",
		"approval=required", "approvers=owner", "require_justification=true", "require_approver_reason=true")
	e.root(t, "write", "apono/roles/imports", "resources=kv/imports/*", "permissions=read", "ttl=30m",
		"approval=required", "approvers=owner")
	return f
}

// portalURL is the portal's address on the listener with the CSP.
func (f *portalFixture) portalURL() string { return f.cspURL + "/v1/apono/ui" }

// startBrowser starts headless chromium with a new, empty profile. Without chromium the
// test fails: the portal's proof is a real browser.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the portal's browser tests need Debian's chromium (apt-get install -y chromium; .ci/run installs it): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return ctx
}

// tab is one person's browser: a browser context of its own (its own storage, as a
// second browser would have), with what went wrong on its pages recorded.
type tab struct {
	t    *testing.T
	who  string
	ctx  context.Context
	f    *portalFixture
	base string // the portal's URL this tab uses

	mu       sync.Mutex
	problems []string
}

// newTab opens a browser context for who, at base (the portal's URL on one listener).
func (f *portalFixture) newTab(t *testing.T, who, base string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(f.browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	tb := &tab{t: t, who: who, ctx: ctx, f: f, base: base}
	console := chromedp.Console(ctx)
	go func() {
		for msg, err := range console {
			if err != nil {
				return
			}
			if msg.Type == chromedp.ConsoleException || strings.HasPrefix(msg.Text, "portal:") || strings.Contains(msg.Text, "Content Security Policy") {
				tb.mu.Lock()
				tb.problems = append(tb.problems, fmt.Sprintf("%s: %s", msg.Type, msg.Text))
				tb.mu.Unlock()
			}
		}
	}()
	// The recorder works: a probe message reaches it.
	tb.do(chromedp.Evaluate[chromedp.Void](`console.error('portal: probe')`))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		tb.mu.Lock()
		got := len(tb.problems) == 1 && strings.Contains(tb.problems[0], "portal: probe")
		if got {
			tb.problems = nil
		}
		tb.mu.Unlock()
		if got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's browser: the console recorder saw no probe", who)
		}
	}
	// DevTools adds this before the page's own scripts; a CSP does not apply to it. It
	// records every violation of the policy, so a test can say none happened.
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.__csp = []; document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));`,
	}); err != nil {
		t.Fatal(err)
	}
	return tb
}

func js(v string) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// do runs actions, failing the test with what the page shows when one fails.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		tb.t.Fatalf("%s's browser: %v\npage text:\n%s", tb.who, err, tb.text("body"))
	}
}

// eval evaluates expr in the page.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("%s's browser: evaluating %s: %v", tb.who, expr, err)
	}
	return v
}

// text is the visible text of the first element matching sel ("" when there is none).
func (tb *tab) text(sel string) string {
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%s) || {innerText: ''}).innerText`, js(sel))))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return v
}

// waitText waits until the first element matching sel shows want.
func (tb *tab) waitText(sel, want string) {
	tb.t.Helper()
	expr := fmt.Sprintf(`(() => { const n = document.querySelector(%s); return !!n && n.innerText.includes(%s); })()`, js(sel), js(want))
	if !tb.poll(expr) {
		html, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`document.querySelector('main').outerHTML`))
		tb.t.Fatalf("%s's browser: %q never showed %q; it shows:\n%s%s\n%s", tb.who, sel, want, tb.text(sel), tb.problemText(), html)
	}
}

// waitFor waits until a JavaScript expression is true.
func (tb *tab) waitFor(expr, what string) {
	tb.t.Helper()
	if !tb.poll(expr) {
		tb.t.Fatalf("%s's browser: %s never happened; the page shows:\n%s%s", tb.who, what, tb.text("main"), tb.problemText())
	}
}

// poll evaluates expr until it is true, for up to 20 s. An evaluation that fails (the
// page is navigating: to the identity provider and back, say) is tried again.
func (tb *tab) poll(expr string) bool {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if ok, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](expr)); err == nil && ok {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// problemText is what went wrong on the tab's pages, for failure messages.
func (tb *tab) problemText() string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.problems) == 0 {
		return ""
	}
	return "\nproblems on the page:\n" + strings.Join(tb.problems, "\n")
}

// open loads the portal at route (a full page load).
func (tb *tab) open(route string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(tb.base + "#" + route))
	tb.waitFor(`!!document.querySelector('main h1')`, "the portal's first view")
}

// nav clicks the header link to a view and waits for its heading.
func (tb *tab) nav(label string) {
	tb.t.Helper()
	tb.do(chromedp.Click(chromedp.JSPath(fmt.Sprintf(`[...document.querySelectorAll('#nav a')].find((a) => a.textContent === %s)`, js(label)))))
	tb.waitText("main h1", label)
}

// signIn signs in with username and password on userpass, as a person does.
func (tb *tab) signIn(p *person) {
	tb.t.Helper()
	tb.waitText("main h1", "Sign in")
	tb.do(
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), p.name),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), p.password),
		chromedp.Click(chromedp.CSS(`form:not([hidden]) button[type="submit"]`)),
	)
	tb.waitText("#user [data-who]", p.name)
}

// signInWithToken signs in by pasting a token from `vault login`, as a person who already
// has one does; the page must then show the login's own name.
func (tb *tab) signInWithToken(tok, name string) {
	tb.t.Helper()
	tb.waitText("main h1", "Sign in")
	tb.do(
		chromedp.Click(chromedp.CSS(`.segment input[value="token"] + label`)),
		chromedp.SendKeys(chromedp.CSS(`form:not([hidden]) input[name="token"]`), tok),
		chromedp.Click(chromedp.CSS(`form:not([hidden]) button[type="submit"]`)),
	)
	tb.waitText("#user [data-who]", name)
}

// token is the Vault token the page keeps.
func (tb *tab) token() string {
	tb.t.Helper()
	return eval[string](tb, `sessionStorage.getItem('apono-portal-token') || ''`)
}

// clean fails the test if anything hostile ran or the page broke: the title changed, an
// element from a hostile string exists, a script other than the portal's is in the page,
// the CSP was violated, or the page threw.
func (tb *tab) clean() {
	tb.t.Helper()
	if title := eval[string](tb, `document.title`); !strings.HasSuffix(title, "· Access portal") {
		tb.t.Fatalf("%s's page title is %q: something ran", tb.who, title)
	}
	if n := eval[int](tb, `document.querySelectorAll('img[src="x"], main script, main img').length`); n != 0 {
		tb.t.Fatalf("%s's page holds %d elements made from data", tb.who, n)
	}
	if n := eval[int](tb, `document.scripts.length`); n != 1 {
		tb.t.Fatalf("%s's page holds %d scripts; only the portal's module belongs there", tb.who, n)
	}
	if v := eval[[]string](tb, `window.__csp || []`); len(v) > 0 {
		tb.t.Fatalf("%s's page violated the Content-Security-Policy: %v", tb.who, v)
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.problems) > 0 {
		tb.t.Fatalf("%s's page: %v", tb.who, tb.problems)
	}
}

// shot takes the view as it is now at laptop (1280x800) and phone (390x844) sizes into
// portal-<name>-laptop.png and portal-<name>-phone.png, with sel (if set) scrolled to the
// top, and checks each is a PNG of that size.
func (tb *tab) shot(name, sel string) {
	tb.t.Helper()
	for _, size := range []struct {
		suffix string
		w, h   int64
		scale  float64
		mobile bool
	}{
		{"laptop", 1280, 800, 1, false},
		{"phone", 390, 844, 2, true},
	} {
		opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(size.scale)}
		if size.mobile {
			opts = append(opts, chromedp.EmulateMobile)
		}
		tb.do(chromedp.EmulateViewport(size.w, size.h, opts...))
		scroll := `window.scrollTo(0, 0)`
		if sel != "" {
			scroll = fmt.Sprintf(`(document.querySelector(%s) || document.body).scrollIntoView({block: 'start'})`, js(sel))
		}
		// Two animation frames: the new size is laid out and painted.
		tb.do(chromedp.Evaluate[chromedp.Void](scroll+`; new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))`, chromedp.EvalAwaitPromise))
		buf, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			tb.t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(buf))
		if err != nil {
			tb.t.Fatalf("screenshot %s: %v", name, err)
		}
		if b := img.Bounds(); b.Dx() != int(float64(size.w)*size.scale) || b.Dy() != int(float64(size.h)*size.scale) {
			tb.t.Fatalf("screenshot %s-%s is %dx%d", name, size.suffix, b.Dx(), b.Dy())
		}
		path := filepath.Join(tb.f.shots, "portal-"+name+"-"+size.suffix+".png")
		if err := os.WriteFile(path, buf, 0o644); err != nil {
			tb.t.Fatal(err)
		}
	}
	tb.do(chromedp.EmulateViewport(1280, 800), chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
}
