// Command scale measures the plugin's lists and access-flow steps at a company's size
// (issue 16), in a dev Vault it starts itself. First live grants: 1k, then 10k, with the
// first page of each grant list timed at each. Then, with the 10k grants in place, the CPU
// Vault and the plugin spend at rest (the baseline), and requests: 1k, 10k, 100k, with the
// first page of every request list and filter, a create, an approval and a pickup timed
// at each, and the CPU at rest again. Each figure is judged against the same figure at the
// first size, measured in the same run; every filter returns a full page at every size.
// Run it from the repository (`make bench-scale`); the table also goes to
// bench/results/scale-<timestamp>.txt.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/procstat"
	"github.com/apono-io/vault-plugin-apono/internal/testvault"
	"github.com/hashicorp/vault/api"
)

type options struct {
	sizes       []int // stored requests at each step
	grants      []int // live grants at each step (the last one stays for the later steps)
	samples     int   // timed calls per figure
	people      int   // requesters
	concurrency int   // clients filling the store
	rest        time.Duration
	out         string
}

func main() {
	o := &options{}
	var sizes, grants string
	flag.StringVar(&sizes, "sizes", "1000,10000,100000", "stored requests at each step")
	flag.StringVar(&grants, "grants", "1000,10000", "live grants at each step (the last stays for later steps)")
	flag.IntVar(&o.samples, "samples", 50, "timed calls per figure")
	flag.IntVar(&o.people, "people", 50, "requesters (each a userpass login with an entity)")
	flag.IntVar(&o.concurrency, "concurrency", 8, "clients filling the store")
	flag.DurationVar(&o.rest, "rest", 3*time.Minute, "how long to measure CPU at rest at each size (Vault runs the periodic job once a minute)")
	flag.StringVar(&o.out, "out", "", "results file (default bench/results/scale-<UTC timestamp>.txt)")
	flag.Parse()
	var err error
	if o.sizes, err = intList(sizes); err == nil {
		o.grants, err = intList(grants)
	}
	if err != nil || o.samples < 5 || o.people < 2 || o.concurrency < 1 || o.rest < 30*time.Second {
		fmt.Fprintln(os.Stderr, "bench-scale: bad flags (sizes and grants: increasing positive numbers; samples >= 5, people >= 2, rest >= 30s):", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-scale:", err)
		os.Exit(1)
	}
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 || (len(out) > 0 && v <= out[len(out)-1]) {
			return nil, fmt.Errorf("%q: want increasing positive numbers", s)
		}
		out = append(out, v)
	}
	return out, nil
}

func progress(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "%s bench-scale: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// env is the Vault, its people and what the run has stored.
type env struct {
	srv    *testvault.Server
	root   *api.Client
	people []*api.Client // requesters
	names  []string
	bob    *api.Client // kv-owners: approves every role's requests
	roles  []string
	rng    *rand.Rand
	rngMu  sync.Mutex
	stored atomic.Int64 // requests stored so far
	live   int          // live grants
	// open counts each person's open requests (pending or approved), which the plugin
	// bounds (max_open_requests, at most 1000); fill keeps each under openCap.
	open []atomic.Int64
}

// openCap is the most open requests fill leaves a person: p000, who asks a tenth of
// everything, would otherwise pass max_open_requests at 100k (a quarter of 10k).
const openCap = 900

const roleCount = 5

func run(ctx context.Context, o *options) error {
	root, err := testvault.RepoRoot()
	if err != nil {
		return err
	}
	if o.out == "" {
		o.out = filepath.Join(root, "bench", "results", "scale-"+time.Now().UTC().Format("20060102T150405Z")+".txt")
	}
	progress("starting a dev %s with the plugin", testvault.ServerName())
	srv, setup, err := testvault.StartWithPlugin(testvault.Options{LogLevel: "warn"})
	defer testvault.RemoveBuilds()
	if err != nil {
		return err
	}
	defer func() { _ = srv.Stop(); _ = os.RemoveAll(srv.Dir) }()
	e, err := setUp(ctx, srv, setup, o)
	if err != nil {
		return err
	}
	rep := &report{opts: o, server: testvault.ServerName(), cpus: runtime.NumCPU(), loadStart: procstat.LoadAvg(), started: time.Now()}

	for _, n := range o.grants {
		progress("issuing live grants up to %d (without bcrypt: see the README)", n)
		if err := e.grantsUpTo(ctx, o, n); err != nil {
			return err
		}
		row, err := e.measureGrants(ctx, o)
		if err != nil {
			return err
		}
		rep.grantRows = append(rep.grantRows, row)
	}
	progress("CPU at rest with %d live grants and no requests (%s)", e.live, o.rest)
	if rep.restBaseline, err = e.cpuAtRest(ctx, o.rest); err != nil {
		return err
	}
	for _, size := range o.sizes {
		progress("filling to %d requests", size)
		if err := e.fill(ctx, o, size); err != nil {
			return err
		}
		row, err := e.measure(ctx, o, size)
		if err != nil {
			return err
		}
		progress("CPU at rest at %d requests (%s)", size, o.rest)
		if row.rest, err = e.cpuAtRest(ctx, o.rest); err != nil {
			return err
		}
		rep.rows = append(rep.rows, row)
	}
	rep.finished, rep.loadEnd = time.Now(), procstat.LoadAvg()
	text := rep.String()
	fmt.Print("\n" + text)
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(o.out, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Println("\nwritten to", o.out)
	return nil
}

// setUp does the vendor setup's plugin config, people, groups, roles and secrets.
func setUp(ctx context.Context, srv *testvault.Server, setup *testvault.Setup, o *options) (*env, error) {
	rootClient, err := srv.RootClient(5*time.Minute, 64)
	if err != nil {
		return nil, err
	}
	e := &env{srv: srv, root: rootClient, rng: rand.New(rand.NewSource(1))}
	cli := func(args ...string) error {
		_, _, err := srv.CLI("", args...)
		return err
	}
	cliIn := func(stdin string, args ...string) error {
		_, _, err := srv.CLIWithStdin("", stdin, args...)
		return err
	}
	repo, _ := testvault.RepoRoot()
	mgmt, err := os.ReadFile(filepath.Join(repo, "testdata", "apono-management.hcl"))
	if err != nil {
		return nil, err
	}
	// Setup only: live grants are made on an LDAP auth mount, whose users/<name> takes the
	// same write as userpass's but hashes no password, so ten thousand of them cost seconds
	// instead of Vault's bcrypt minutes. The grant path itself (policy, user write, WAL,
	// record, indexes, lease) is the real one; every timed pickup uses userpass.
	steps := []func() error{
		func() error { return cli("auth", "enable", "-path=bench-ldap", "ldap") },
		func() error {
			return cliIn(string(mgmt)+"\npath \"auth/bench-ldap/users/*\" { capabilities = [\"create\",\"update\",\"read\",\"delete\"] }\n"+
				"path \"auth/bench-ldap/users\" { capabilities = [\"list\"] }\n", "policy", "write", testvault.PolicyName, "-")
		},
		func() error {
			return cli("write", "apono/config", "vault_addr="+srv.URL(), "role_id="+setup.RoleID, "secret_id="+setup.SecretID,
				"owner_metadata_key=owner", "integration_owner=security", "max_open_requests=1000")
		},
		func() error { return cli("kv", "put", "kv/app/db", "v=1") },
		func() error { return cli("kv", "metadata", "put", "-custom-metadata=owner=kv-owners", "kv/app/db") },
		func() error {
			return cliIn(`path "apono/*" { capabilities = ["create","read","update","list"] }`, "policy", "write", "bench-people", "-")
		},
		func() error {
			return cli("write", "apono/roles/direct", "resources=kv/app/db", "ttl=24h", "max_ttl=24h")
		},
	}
	for i := 0; i < roleCount; i++ {
		role := fmt.Sprintf("r%d", i)
		e.roles = append(e.roles, role)
		steps = append(steps, func() error {
			return cli("write", "apono/roles/"+role, "resources=kv/app/db", "approval=required", "approvers=owner",
				"ttl=1h", "request_ttl=720h", "pickup_ttl=720h")
		})
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	login := func(name string) (*api.Client, string, error) {
		if err := cli("write", "auth/userpass/users/"+name, "password=pw-"+name, "token_policies=bench-people"); err != nil {
			return nil, "", err
		}
		c, err := srv.RootClient(5*time.Minute, 16)
		if err != nil {
			return nil, "", err
		}
		s, err := c.Logical().WriteWithContext(ctx, "auth/userpass/login/"+name, map[string]interface{}{"password": "pw-" + name})
		if err != nil {
			return nil, "", err
		}
		c.SetToken(s.Auth.ClientToken)
		// Renamed like the people of the e2e tests: roles can name them, lists show them.
		if err := cli("write", "identity/entity/id/"+s.Auth.EntityID, "name="+name); err != nil {
			return nil, "", err
		}
		return c, s.Auth.EntityID, nil
	}
	var bobID string
	if e.bob, bobID, err = login("bob"); err != nil {
		return nil, err
	}
	if err := cli("write", "identity/group", "name=kv-owners", "member_entity_ids="+bobID); err != nil {
		return nil, err
	}
	for i := 0; i < o.people; i++ {
		name := fmt.Sprintf("p%03d", i)
		c, _, err := login(name)
		if err != nil {
			return nil, err
		}
		e.people, e.names = append(e.people, c), append(e.names, name)
	}
	e.open = make([]atomic.Int64, len(e.people))
	return e, nil
}

func (e *env) intn(n int) int {
	e.rngMu.Lock()
	defer e.rngMu.Unlock()
	return e.rng.Intn(n)
}

// fill stores requests until there are size: each by a random person on a random role,
// then 60 % cancelled, 15 % denied, 10 % approved (open), 15 % left pending.
func (e *env) fill(ctx context.Context, o *options, size int) error {
	var next atomic.Int64
	next.Store(e.stored.Load())
	errs := make(chan error, o.concurrency)
	var wg sync.WaitGroup
	last := time.Now()
	for w := 0; w < o.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(size) && ctx.Err() == nil {
				// p000 asks a tenth of the requests, so its own list is full at every size.
				who := 0
				if e.intn(10) != 0 {
					who = 1 + e.intn(len(e.people)-1)
				}
				p := e.people[who]
				id, err := e.ask(ctx, p, e.roles[e.intn(len(e.roles))])
				if err == nil {
					r := e.intn(100)
					if r >= 75 && e.open[who].Add(1) > openCap {
						e.open[who].Add(-1)
						r = 0 // cancelled instead: the person has openCap open already
					}
					switch {
					case r < 60:
						_, err = p.Logical().WriteWithContext(ctx, "apono/requests/"+id+"/cancel", nil)
					case r < 75:
						_, err = e.bob.Logical().WriteWithContext(ctx, "apono/requests/"+id+"/deny", map[string]interface{}{"reason": "bench"})
					case r < 85:
						_, err = e.bob.Logical().WriteWithContext(ctx, "apono/requests/"+id+"/approve", nil)
					}
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				if n := e.stored.Add(1); n%5000 == 0 && time.Since(last) > 10*time.Second {
					last = time.Now()
					progress("  %d requests stored", n)
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	return ctx.Err()
}

func (e *env) ask(ctx context.Context, p *api.Client, role string) (string, error) {
	s, err := p.Logical().WriteWithContext(ctx, "apono/requests/"+role, map[string]interface{}{"justification": "bench"})
	if err != nil {
		return "", err
	}
	id, _ := s.Data["request_id"].(string)
	if id == "" {
		return "", errors.New("a request answered no request_id")
	}
	return id, nil
}

// grantsUpTo issues direct grants (as a service, stated requesters) until n are live,
// with the userpass mount pointed at the bcrypt-free LDAP mount, then points it back.
func (e *env) grantsUpTo(ctx context.Context, o *options, n int) error {
	if _, err := e.root.Logical().WriteWithContext(ctx, "apono/config", map[string]interface{}{"userpass_mount": "bench-ldap"}); err != nil {
		return err
	}
	var next atomic.Int64
	next.Store(int64(e.live))
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n) && ctx.Err() == nil; i = next.Add(1) {
				_, err := e.root.Logical().WriteWithContext(ctx, "apono/grants/direct", map[string]interface{}{
					"requester": fmt.Sprintf("svc-%d@example.com", i%5)})
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	e.live = n
	if _, err := e.root.Logical().WriteWithContext(ctx, "apono/config", map[string]interface{}{"userpass_mount": "userpass"}); err != nil {
		return err
	}
	select {
	case err := <-errs:
		return err
	default:
	}
	return ctx.Err()
}

// figure is the latencies of one measured call.
type figure struct {
	name     string
	p50, p99 time.Duration
}

type row struct {
	requests, grants int
	figures          []figure
	rest             restCPU
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p*float64(len(s))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

// timed runs call samples times one after the other (after two untimed ones) and keeps
// its latencies.
func timed(ctx context.Context, name string, samples int, call func() error) (figure, error) {
	var d []time.Duration
	for i := -2; i < samples; i++ {
		start := time.Now()
		if err := call(); err != nil {
			return figure{}, fmt.Errorf("%s: %w", name, err)
		}
		if i >= 0 {
			d = append(d, time.Since(start))
		}
		if ctx.Err() != nil {
			return figure{}, ctx.Err()
		}
	}
	return figure{name: name, p50: percentile(d, 0.5), p99: percentile(d, 0.99)}, nil
}

// page reads path with query as c and checks it returned a page.
func page(ctx context.Context, c *api.Client, path string, query map[string][]string, want int) func() error {
	return func() error {
		s, err := c.Logical().ReadWithDataWithContext(ctx, path, query)
		if err != nil {
			return err
		}
		if s == nil || s.Data == nil {
			return fmt.Errorf("%s: empty answer", path)
		}
		for _, k := range []string{"requests", "grants", "keys"} {
			if list, ok := s.Data[k].([]interface{}); ok {
				if len(list) < want {
					return fmt.Errorf("%s %v: a first page of %d, want at least %d", path, query, len(list), want)
				}
				return nil
			}
		}
		return fmt.Errorf("%s: no list in %v", path, s.Data)
	}
}

// query is a page of 100 with the filters kv.
func query(kv ...string) map[string][]string {
	out := map[string][]string{"limit": {"100"}}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = []string{kv[i+1]}
	}
	return out
}

func want(n int) int { return min(n, 100) }

// measureGrants times a first page of each grant list.
func (e *env) measureGrants(ctx context.Context, o *options) (row, error) {
	progress("measuring the grant lists at %d live grants", e.live)
	r := row{grants: e.live}
	for _, l := range []struct {
		name  string
		query map[string][]string
		min   int
	}{
		{"grants (all)", query("list", "true"), want(e.live)},
		{"grants role=direct", query("list", "true", "role", "direct"), want(e.live)},
		{"grants requester=svc-3 (a fifth)", query("list", "true", "requester", "svc-3@example.com"), want(e.live / 10)},
	} {
		f, err := timed(ctx, l.name, o.samples, page(ctx, e.root, "apono/grants", l.query, l.min))
		if err != nil {
			return r, err
		}
		r.figures = append(r.figures, f)
	}
	return r, nil
}

func (e *env) measure(ctx context.Context, o *options, size int) (row, error) {
	progress("measuring at %d requests, %d live grants", size, e.live)
	r := row{requests: size, grants: e.live}
	q := query
	p0 := e.people[0]
	lists := []struct {
		name  string
		c     *api.Client
		path  string
		query map[string][]string
		min   int
	}{
		{"audit/requests (all)", e.root, "apono/audit/requests", q(), want(size)},
		{"audit/requests status=cancelled", e.root, "apono/audit/requests", q("status", "cancelled"), want(size / 2)},
		{"audit/requests role=r3", e.root, "apono/audit/requests", q("role", "r3"), want(size / 20)},
		{"requests mine=true (a tenth are theirs)", p0, "apono/requests", q("mine", "true"), want(size / 20)},
		{"requests can_approve=true (owner)", e.bob, "apono/requests", q("can_approve", "true"), want(size / 10)},
		{"requests (an owner's view)", e.bob, "apono/requests", q(), want(size)},
		{"requests status=denied (owner)", e.bob, "apono/requests", q("status", "denied"), want(size / 10)},
	}
	for _, l := range lists {
		f, err := timed(ctx, l.name, o.samples, page(ctx, l.c, l.path, l.query, l.min))
		if err != nil {
			return r, err
		}
		r.figures = append(r.figures, f)
	}

	// A request create, an approval, a pickup (a real userpass grant, with bcrypt), each
	// one after the other; the requests made here are approved and picked up in turn.
	var ids []string
	f, err := timed(ctx, "request create", o.samples, func() error {
		id, err := e.ask(ctx, p0, "r1")
		ids = append(ids, id)
		return err
	})
	if err != nil {
		return r, err
	}
	r.figures = append(r.figures, f)
	i := 0
	f, err = timed(ctx, "approve", o.samples, func() error {
		_, err := e.bob.Logical().WriteWithContext(ctx, "apono/requests/"+ids[i]+"/approve", nil)
		i++
		return err
	})
	if err != nil {
		return r, err
	}
	r.figures = append(r.figures, f)
	i = 0
	var leases []string
	f, err = timed(ctx, "pickup (userpass grant)", min(o.samples, 30), func() error {
		s, err := p0.Logical().WriteWithContext(ctx, "apono/requests/"+ids[i]+"/grant", nil)
		i++
		if err == nil {
			leases = append(leases, s.LeaseID)
		}
		return err
	})
	if err != nil {
		return r, err
	}
	r.figures = append(r.figures, f)
	for _, l := range leases {
		if err := e.root.Sys().RevokeWithContext(ctx, l); err != nil {
			return r, err
		}
	}
	e.stored.Add(int64(len(ids)))
	return r, nil
}

// restCPU is what Vault and the plugin spent per minute at rest.
type restCPU struct {
	vault, plugin time.Duration // per minute
}

func (c restCPU) total() time.Duration { return c.vault + c.plugin }

func (e *env) cpuAtRest(ctx context.Context, d time.Duration) (restCPU, error) {
	vpid, err := e.srv.PID()
	if err != nil {
		return restCPU{}, err
	}
	ppid, err := e.srv.PluginPID()
	if err != nil {
		return restCPU{}, err
	}
	v0, p0 := procstat.CPUTime(vpid), procstat.CPUTime(ppid)
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return restCPU{}, ctx.Err()
	}
	if now, err := e.srv.PluginPID(); err != nil || now != ppid {
		return restCPU{}, fmt.Errorf("the plugin process changed while at rest (%d -> %d, %v)", ppid, now, err)
	}
	per := func(c time.Duration) time.Duration {
		return time.Duration(float64(c) * float64(time.Minute) / float64(d))
	}
	return restCPU{vault: per(procstat.CPUTime(vpid) - v0), plugin: per(procstat.CPUTime(ppid) - p0)}, nil
}
