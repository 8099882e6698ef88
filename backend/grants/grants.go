// Package grants owns the Vault objects of one grant: it issues them (the userpass user,
// its identity entity, the apono-* policy, the record and its index entries, under a WAL
// entry), removes them (revoke, rollback, sweep: one idempotent removal), and keeps the
// grant's record and history in step. It is built once, in backend/factory.go, from what
// must stay single (the per-grant locks, the lifetime context, the background WaitGroup,
// the caches of Vault's answers). It parses no request fields and shapes no responses:
// the paths above it do; and it never decides who may have access: access does.
package grants

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/metrics"
	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/apono-io/vault-plugin-apono/internal/keylock"
	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/mitchellh/mapstructure"
)

const (
	// WALKind is the kind of the WAL entry each issue writes (Vault hands it back to the
	// backend's WALRollback).
	WALKind = "grant"
	// ProbeID stands for "any grant" in capability checks of per-grant paths.
	ProbeID = "0000000000000000"
	// IDPattern is the form of a grant ID: 64 random bits in hex.
	IDPattern = `[0-9a-f]{16}`
	// PolicyListPath lists ACL policies; the seed's policy does not allow it.
	PolicyListPath = "sys/policies/acl"
)

var idRe = regexp.MustCompile("^" + IDPattern + "$")

// Deps is what a Grants is built from. Everything in it is shared with the rest of the
// backend and must not be copied.
type Deps struct {
	// Prefix is "apono-<mount tag>-": every user, policy and entity this mount makes starts
	// with it, and it differs between mounts.
	Prefix string
	Logger func() hclog.Logger
	// Locks serialise the work on one grant (issue, renew, revoke, sweep).
	Locks *keylock.Set
	Index *store.Indexes
	Caps  *vaultapi.CapabilityCache
	// Mounts, AuthAccessors and TokenLifetimes cache Vault's answers.
	Mounts         *vaultapi.MountsCache
	AuthAccessors  *vaultapi.AuthAccessorCache
	TokenLifetimes *vaultapi.TokenLifetimeCache
	// Lifetime ends when the backend is cleaned up; Background counts work an issue
	// leaves running after its response.
	Lifetime   context.Context
	Background *sync.WaitGroup
	// Emit sends an access-flow event to the configured destinations.
	Emit func(ctx context.Context, cfg *config.Config, ev notify.Event)
	// System is Vault's view of the mount (lease TTLs, password policies).
	System func() logical.SystemView
	// OwnMount is this plugin's mount path ("apono/"), written into entity metadata.
	OwnMount func() string
	// CrashAt exits the process at a named point when the fault tests ask (nil: never).
	CrashAt func(point string)
	// Metrics counts issues and removals (nil: nothing counted).
	Metrics *metrics.Metrics
}

// Grants issues and removes grants' objects. Build it with New.
type Grants struct {
	Deps
	pwHash passwordHashSupport
}

// New returns the Grants of one backend.
func New(d Deps) *Grants { return &Grants{Deps: d} }

// resourceOptions are what resource.Resolve needs besides the mounts.
func (g *Grants) resourceOptions(cfg *config.Config) resource.Options {
	return resource.Options{OwnMount: g.OwnMount(), PathPrefixes: cfg.GrantablePathPrefixes}
}

func (g *Grants) logger() hclog.Logger { return g.Logger() }

func (g *Grants) crashAt(point string) {
	if g.CrashAt != nil {
		g.CrashAt(point)
	}
}

// ObjectName is the name of both the userpass user and the ACL policy of a grant.
func (g *Grants) ObjectName(grantID string) string { return g.Prefix + grantID }

// IDFromName returns the grant ID of a name this mount creates, and false for any other
// name (another mount's, a person's, a policy like "default").
func (g *Grants) IDFromName(name string) (string, bool) {
	id, ok := strings.CutPrefix(name, g.Prefix)
	if !ok || !idRe.MatchString(id) {
		return "", false
	}
	return id, true
}

// Owns reports whether name is one this mount creates for its grants.
func (g *Grants) Owns(name string) bool {
	_, ok := g.IDFromName(name)
	return ok
}

// NewID returns a random 64-bit grant ID. It is not checked against stored grants: the
// chance that it equals a live grant's is about n/1.8e19 for n live grants, and checking
// cost every grant a storage round trip through Vault.
func NewID() (string, error) {
	buf := make([]byte, 8)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	return hex.EncodeToString(buf), nil
}

// Objects names everything a grant created in Vault. It is the lease's InternalData
// and the WAL entry's data, so revocation and rollback need nothing else: not the role,
// not the config's current userpass mount.
type Objects struct {
	GrantID       string `json:"grant_id" mapstructure:"grant_id"`
	Username      string `json:"username" mapstructure:"username"`
	Policy        string `json:"policy" mapstructure:"policy"`
	UserpassMount string `json:"userpass_mount" mapstructure:"userpass_mount"`
	// Entity is the name of the grant user's identity entity, when the plugin made one.
	Entity string `json:"entity,omitempty" mapstructure:"entity"`
	// BreakGlassKey is the plugin's storage entry counting a break-glass grant among its
	// requester's live ones; it goes with the grant.
	BreakGlassKey string `json:"break_glass_key,omitempty" mapstructure:"break_glass_key"`
	// RevokeLoginsRequired marks a grant whose user can obtain leased credentials (a
	// database user): its removal fails until the user's login tokens, and with them those
	// leases, are revoked.
	RevokeLoginsRequired bool `json:"revoke_logins_required,omitempty" mapstructure:"revoke_logins_required"`
}

// DecodeObjects reads Objects from InternalData or WAL data, which after a restart are
// plain map[string]interface{} values: decode, never assert.
func DecodeObjects(raw interface{}) (Objects, error) {
	var o Objects
	if err := mapstructure.Decode(raw, &o); err != nil {
		return o, fmt.Errorf("decoding grant objects: %w", err)
	}
	if o.Username == "" || o.Policy == "" || o.UserpassMount == "" {
		return o, errors.New("grant data is missing the username, policy or userpass mount")
	}
	return o, nil
}
