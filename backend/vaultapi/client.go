// Package vaultapi is the plugin's one way back into Vault: the small Client interface the
// backend calls (policies, userpass users, identity entities, discovery's LIST and read,
// capabilities, health) and APIClient, its implementation over the api module, which logs
// in with AppRole or a token, keeps the token renewed and bounds every call. It knows
// nothing of grants, requests or the plugin's storage, and imports no package of the
// plugin above internal/.
package vaultapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/apono-io/vault-plugin-apono/internal/netaddr"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
)

// Client is the small part of Vault's API the backend calls back into. The real
// implementation is APIClient; the unit tests use vaultfake.
type Client interface {
	// Mounts returns the secrets engines keyed by their path with a trailing slash.
	Mounts(ctx context.Context) (map[string]MountInfo, error)

	WritePolicy(ctx context.Context, name, rules string) error
	// DeletePolicy succeeds when the policy is already gone.
	DeletePolicy(ctx context.Context, name string) error

	WriteUser(ctx context.Context, mount, name string, u UserSpec) error
	UpdateUserTTL(ctx context.Context, mount, name string, ttl, maxTTL time.Duration) error
	// DeleteUser succeeds when the user is already gone.
	DeleteUser(ctx context.Context, mount, name string) error
	ListUsers(ctx context.Context, mount string) ([]string, error)
	// RevokeLoginTokens revokes every token the user got by logging in (needs sudo on
	// sys/leases/revoke-prefix; optional).
	RevokeLoginTokens(ctx context.Context, mount, name string) error

	// List and Read are the generic calls discovery needs. List returns the keys and,
	// where Vault gives it, key_info. A missing path lists as empty.
	List(ctx context.Context, path string) ([]string, map[string]interface{}, error)
	Read(ctx context.Context, path string) (map[string]interface{}, error)

	// Identity of grant users (optional: needs the identity additions to the management
	// policy). WriteEntity creates or updates the entity called name and returns its ID;
	// WriteEntityAlias maps the login name on an auth mount onto it; DeleteEntity removes
	// the entity and its aliases and succeeds when it is already gone.
	WriteEntity(ctx context.Context, name string, metadata map[string]string) (string, error)
	WriteEntityAlias(ctx context.Context, name, canonicalID, mountAccessor string) error
	DeleteEntity(ctx context.Context, name string) error
	// DeleteByPath deletes a path (an entity by ID, for the legacy sweep); a missing one
	// counts as deleted.
	DeleteByPath(ctx context.Context, path string) error
	// AuthMountAccessor is the accessor of the auth mount at path (e.g. "userpass").
	AuthMountAccessor(ctx context.Context, path string) (string, error)

	// LookupTokenAccessor tells how long the token with this accessor lives (optional:
	// needs update on auth/token/lookup-accessor).
	LookupTokenAccessor(ctx context.Context, accessor string) (*TokenLifetime, error)

	// CapabilitiesSelf returns the caller's capabilities on each path.
	CapabilitiesSelf(ctx context.Context, paths []string) (map[string][]string, error)
	Health(ctx context.Context) (*api.HealthResponse, error)

	// Close stops background token renewal.
	Close()
}

// Settings is where and how the client reaches Vault and logs in: AppRole (roleID,
// secretID, appRoleMount) or a token.
type Settings struct {
	Addr          string
	RoleID        string
	SecretID      string
	AppRoleMount  string
	Token         string
	CACert        string
	TLSServerName string
	TLSSkipVerify bool
	// Namespace, when set, is the namespace every call is made in (X-Vault-Namespace).
	Namespace string
}

// MountInfo is a secrets engine mount: its type and, for KV, its version.
type MountInfo struct {
	Type    string
	Version string // options.version for kv
}

// TokenLifetime is what auth/token/lookup-accessor says of a token's life.
type TokenLifetime struct {
	// TTL is what is left of the token now; 0 means it never expires (root).
	TTL time.Duration
	// ExpireTime is when it ends unless renewed; zero when it never expires.
	ExpireTime time.Time
	// Period is set for a periodic token: every renewal gives it Period again.
	Period time.Duration
	// ExplicitMaxTTL, when set, is a hard limit from CreationTime that no renewal passes.
	ExplicitMaxTTL time.Duration
	CreationTime   time.Time
	Renewable      bool
	// Path is the API path that made the token: auth/<mount>/login/... for a login,
	// auth/token/create... for a token made from another one.
	Path string
}

// End is when a token ends for sure, or zero when nothing ends it while it is renewed
// (a root token, a periodic token without an explicit max TTL).
func (l *TokenLifetime) End() time.Time {
	if l.Period > 0 {
		if l.ExplicitMaxTTL > 0 && !l.CreationTime.IsZero() {
			return l.CreationTime.Add(l.ExplicitMaxTTL)
		}
		return time.Time{}
	}
	return l.ExpireTime
}

// UserSpec is a userpass user a grant writes.
type UserSpec struct {
	// Password, or PasswordHash (bcrypt) where userpass takes it (package grants).
	Password     string
	PasswordHash string
	Policies     []string
	TTL          time.Duration
	MaxTTL       time.Duration
	BoundCIDRs   []string
}

// APIClient implements Client with github.com/hashicorp/vault/api. It logs in with
// AppRole (or uses a static token), keeps the token renewed with a LifetimeWatcher, and
// logs in again when the token expires or a call is denied with 403.
type APIClient struct {
	client *api.Client
	login  func(ctx context.Context) (*api.Secret, error) // nil with a static token
	logger hclog.Logger

	mu       sync.Mutex
	loggedIn bool
	gen      uint64 // bumped on every login, so concurrent 403s trigger one re-login
	stopOnce sync.Once
	stop     chan struct{}
}

var _ Client = (*APIClient)(nil)

func New(ctx context.Context, cfg Settings, logger hclog.Logger) (*APIClient, error) {
	// The credentials go only to an address that passes the config's rule, whichever way
	// the config got into storage.
	if msg := CheckAddr(cfg.Addr); msg != "" {
		return nil, errors.New(msg)
	}
	c, err := newRawAPIClient(cfg)
	if err != nil {
		return nil, err
	}
	c.SetToken(cfg.Token)

	ac := &APIClient{client: c, logger: logger, stop: make(chan struct{})}
	if cfg.Token == "" {
		auth, err := approle.NewAppRoleAuth(cfg.RoleID, &approle.SecretID{FromString: cfg.SecretID},
			approle.WithMountPath(cfg.AppRoleMount))
		if err != nil {
			return nil, err
		}
		// Logins use a client of their own, never given a token, so the shared client is
		// never seen without one. Not a Clone: a clone's config forgets DisableRedirects.
		lc, err := newRawAPIClient(cfg)
		if err != nil {
			return nil, err
		}
		ac.login = func(ctx context.Context) (*api.Secret, error) {
			return auth.Login(ctx, lc)
		}
	}
	if err := ac.ensureLogin(ctx, 0); err != nil {
		return nil, err
	}
	return ac, nil
}

// CallTimeout bounds each call the plugin makes into Vault's API (retries included).
// Calls take milliseconds (p99 80 ms while 1000 grants are revoked at once). The bound
// matters when Vault seals, steps down or shuts down: Vault calls the plugin (a request,
// a lease revocation) while holding its state lock for reading, the seal queues for that
// lock, and every new API request, the plugin's calls back into Vault included, waits
// behind the seal. Nothing moves until a plugin call gives up, so this is how long a
// `vault operator step-down` or a SIGTERM can be held up. What fails here is retried:
// Vault retries the revocation (after the restart or on the new active node); a grant's
// client sees a 500 and can write again, and Vault's rollback of the WAL entry
// removes what it made (leaveIssueToWAL).
const CallTimeout = 5 * time.Second

// newRawAPIClient is an api.Client for cfg's address and TLS settings, with no token.
func newRawAPIClient(cfg Settings) (*api.Client, error) {
	apiCfg := api.DefaultConfig()
	if apiCfg.Error != nil {
		return nil, apiCfg.Error
	}
	apiCfg.Address = cfg.Addr
	apiCfg.Timeout = CallTimeout
	// Never follow a redirect: the api package would send the same request, the login's
	// secret_id or the X-Vault-Token header included, to wherever the answer points, an
	// address no config write has checked.
	apiCfg.DisableRedirects = true
	// Grants come in bursts; keep enough idle connections so a burst reuses them.
	if t, ok := apiCfg.HttpClient.Transport.(*http.Transport); ok {
		t.MaxIdleConnsPerHost = 64
		t.MaxIdleConns = 128
	}
	if cfg.CACert != "" || cfg.TLSServerName != "" || cfg.TLSSkipVerify {
		if err := apiCfg.ConfigureTLS(&api.TLSConfig{
			CACertBytes:   []byte(cfg.CACert),
			TLSServerName: cfg.TLSServerName,
			Insecure:      cfg.TLSSkipVerify,
		}); err != nil {
			return nil, fmt.Errorf("configuring TLS: %w", err)
		}
	}
	c, err := api.NewClient(apiCfg)
	if err != nil {
		return nil, err
	}
	// The plugin's environment must not choose the identity it acts as, nor where.
	c.ClearNamespace()
	c.ClearToken()
	if cfg.Namespace != "" {
		c.SetNamespace(cfg.Namespace)
	}
	return c, nil
}

// UnauthenticatedHealth reads sys/health, which needs no token, so that apono/health can
// tell "Vault is down or sealed" from "login fails" when no client can be built.
func UnauthenticatedHealth(ctx context.Context, cfg Settings) (*api.HealthResponse, error) {
	c, err := newRawAPIClient(cfg)
	if err != nil {
		return nil, err
	}
	c.ClearNamespace() // sys/health is the server's, answered in the root namespace
	return c.Sys().HealthWithContext(ctx)
}

// ensureLogin logs in when there is no valid token yet, or when the token used by a call
// of generation failedGen was refused and nobody has logged in since.
func (c *APIClient) ensureLogin(ctx context.Context, failedGen uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.login == nil {
		if !c.loggedIn {
			// A static token: check it once so a bad token is a config error, not a grant error.
			if _, err := c.client.Auth().Token().LookupSelfWithContext(ctx); err != nil {
				return fmt.Errorf("token lookup failed: %w", Redact(err))
			}
			c.loggedIn = true
			c.gen++
		}
		return nil
	}
	if c.loggedIn && failedGen != c.gen {
		return nil
	}
	secret, err := c.login(ctx)
	if err != nil {
		return fmt.Errorf("approle login failed: %w", Redact(err))
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return errors.New("approle login returned no token")
	}
	c.client.SetToken(secret.Auth.ClientToken)
	c.loggedIn = true
	c.gen++
	c.watch(secret, c.gen)
	return nil
}

// watch renews the login token in the background; when it can no longer be renewed the
// next call logs in again.
func (c *APIClient) watch(secret *api.Secret, gen uint64) {
	if !secret.Auth.Renewable {
		go c.expireAfter(time.Duration(secret.Auth.LeaseDuration)*time.Second*9/10, gen)
		return
	}
	w, err := c.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: secret})
	if err != nil {
		c.logger.Warn("cannot watch management token; will log in again on expiry", "error", err)
		go c.expireAfter(time.Duration(secret.Auth.LeaseDuration)*time.Second*9/10, gen)
		return
	}
	go w.Start()
	go func() {
		defer w.Stop()
		for {
			select {
			case <-c.stop:
				return
			case err := <-w.DoneCh():
				if err != nil {
					c.logger.Debug("management token renewal ended", "error", Redact(err))
				}
				c.markExpired(gen)
				return
			case <-w.RenewCh():
			}
		}
	}()
}

func (c *APIClient) expireAfter(d time.Duration, gen uint64) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.stop:
	case <-t.C:
		c.markExpired(gen)
	}
}

func (c *APIClient) markExpired(gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.loggedIn = false
	}
}

func (c *APIClient) Close() {
	c.stopOnce.Do(func() { close(c.stop) })
}

// do runs fn with a logged-in client; a 403 (which is what Vault answers for an expired
// or revoked token too) makes it log in again and retry once.
func (c *APIClient) do(ctx context.Context, fn func(*api.Client) error) error {
	if err := c.ensureLogin(ctx, 0); err != nil {
		return err
	}
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	err := fn(c.client)
	if err == nil || c.login == nil || !IsStatus(err, http.StatusForbidden) {
		return err
	}
	if lerr := c.ensureLogin(ctx, gen); lerr != nil {
		return lerr
	}
	return fn(c.client)
}

// IsStatus reports whether err is a Vault API error with the given HTTP status.
func IsStatus(err error, status int) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == status
}

// Redact reduces an API error to method, URL, status and Vault's messages, so nothing else
// the api package might attach ever reaches a log line or a 400 (request bodies hold
// secret_ids and passwords).
func Redact(err error) error {
	if err == nil {
		return nil
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		return fmt.Errorf("%s %s: %d: %s", re.HTTPMethod, re.URL, re.StatusCode, strings.Join(re.Errors, "; "))
	}
	return err
}

// CheckAddr checks vault_addr before anything connects to it: an https:// URL, or
// http:// to a loopback address, with a host and no user:password@. It returns a message
// naming the field, or "".
func CheckAddr(raw string) string {
	const rule = "vault_addr must be an https:// URL, or http:// to a loopback address (127.0.0.1, [::1], localhost), with a host and no user:password@"
	if raw == "" {
		return "vault_addr is required, e.g. https://vault.example.com:8200"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" || u.User != nil {
		return fmt.Sprintf("%s; got %q", rule, textsafe.Truncate(raw))
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		if netaddr.IsLoopbackHost(u.Hostname()) {
			return ""
		}
		return fmt.Sprintf("%s; %q is not a loopback address, and http:// would send the plugin's credentials unencrypted", rule, textsafe.Truncate(u.Hostname()))
	}
	return fmt.Sprintf("%s; got %q", rule, textsafe.Truncate(raw))
}
