package backend

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/grants"
	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/apono-io/vault-plugin-apono/backend/sweep"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Overall health statuses.
const (
	healthOK            = "ok"             // Vault up, login works, every required capability held
	healthDegraded      = "degraded"       // Vault up and login works, but a required capability is missing
	healthDown          = "down"           // Vault unreachable, sealed, or login fails
	healthNotConfigured = "not_configured" // apono/config not written yet
)

const (
	// healthTimeout bounds a health read, so a hung Vault gives a report, not a hung request.
	healthTimeout = 30 * time.Second
)

// capabilityCheck is one path the management token needs (Required) or may use.
type capabilityCheck struct {
	Path     string
	Needs    []string
	Required bool
	Purpose  string
}

// capabilityChecks lists what the plugin calls in Vault, with the capabilities each call
// needs; the required ones are the seed's apono-management policy for userpassMount.
func (b *aponoBackend) capabilityChecks(userpassMount string) []capabilityCheck {
	probe := b.grants.ObjectName(grants.ProbeID)
	return []capabilityCheck{
		{Path: "sys/capabilities-self", Needs: []string{"update"}, Required: true,
			Purpose: "check capabilities (this report)"},
		{Path: "sys/mounts", Needs: []string{"read"}, Required: true,
			Purpose: "resolve resources to their KV v2 or Transit mounts (roles, grants)"},
		{Path: "auth/" + userpassMount + "/users", Needs: []string{"list"}, Required: true,
			Purpose: "find orphaned grant users (sweeper)"},
		{Path: "auth/" + userpassMount + "/users/" + probe, Needs: []string{"create", "delete", "read", "update"}, Required: true,
			Purpose: "create, extend and delete grant users"},
		{Path: "sys/policies/acl/" + probe, Needs: []string{"create", "delete", "read", "update"}, Required: true,
			Purpose: "create and delete grant policies"},
		{Path: grants.RevokeLoginsCheckPath(userpassMount, probe), Needs: []string{"sudo", "update"},
			Purpose: "revoke a grant user's tokens with their child leases when the grant ends: defence in depth for KV and Transit (deleting the policy already cuts them), " +
				"required for database, PKI, SSH and path roles, whose credentials (a database user) otherwise outlive the grant; such a role cannot be written without it"},
		{Path: grants.PolicyListPath, Needs: []string{"list"},
			Purpose: "find orphaned grant policies that have no user (sweeper)"},
		// The identity additions (testdata/apono-identity.hcl).
		{Path: grants.TokenLookupPath, Needs: []string{"update"},
			Purpose: "check each grant's end against the token that asked for it (a lease ends with its token)"},
		{Path: b.grants.EntityCheckPath(), Needs: []string{"create", "delete", "read", "update"},
			Purpose: "create and remove each grant user's identity entity (without it, every grant that is used leaves an entity behind)"},
		{Path: grants.EntityAliasPath, Needs: []string{"create", "update"},
			Purpose: "map each grant user's logins onto the grant's entity"},
		{Path: grants.EntityListPath, Needs: []string{"list"},
			Purpose: "find grant entities that no grant explains (sweeper)"},
		{Path: "identity/entity/name/on-behalf-probe", Needs: []string{"read"},
			Purpose: "look up the person a request is made for (requests/<role> with for=<entity name>)"},
		// The legacy additions (testdata/apono-identity-legacy.hcl).
		{Path: sweep.AliasListPath, Needs: []string{"list"},
			Purpose: "find entities that earlier versions of the plugin left behind (sweeper)"},
		{Path: sweep.EntityByIDCheckPath(), Needs: []string{"delete", "read"},
			Purpose: "remove entities that earlier versions of the plugin left behind (sweeper)"},
	}
}

// discoveryChecks are the optional reads discovery makes on each KV v2 and Transit mount.
func (b *aponoBackend) discoveryChecks(mounts map[string]vaultapi.MountInfo) []capabilityCheck {
	var out []capabilityCheck
	own := b.ownMountPath()
	for _, path := range slices.Sorted(maps.Keys(mounts)) {
		m := mounts[path]
		if path == own {
			continue
		}
		switch {
		case m.Type == "kv" && m.Version == "2":
			out = append(out, capabilityCheck{Path: path + "metadata/", Needs: []string{"list", "read"},
				Purpose: "discover the secrets of KV v2 mount " + path})
		case m.Type == "transit":
			out = append(out, capabilityCheck{Path: path + "keys", Needs: []string{"list"},
				Purpose: "discover the keys of Transit mount " + path})
		}
	}
	return out
}

func pathHealth(b *aponoBackend) *framework.Path {
	return &framework.Path{
		Pattern: "health$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "apono",
			OperationSuffix: "health",
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathHealthRead,
				Summary:  "Check that the plugin can reach Vault, log in, and do its work.",
				Responses: map[int][]framework.Response{
					http.StatusOK: {{Description: "OK", Fields: healthResponseFields}},
				},
			},
		},
		HelpSynopsis:    "Check that the plugin can reach Vault, log in, and do its work.",
		HelpDescription: pathHealthHelp,
	}
}

const pathHealthHelp = `
Reading health checks, with the configured credentials, that Vault is reachable and
unsealed, that login works, and (through sys/capabilities-self) that the management token
holds every capability the plugin needs: the seed's apono-management policy for the
configured userpass mount. It also reports optional capabilities: sudo on
sys/leases/revoke-prefix/auth/<userpass>/login/... (revoke also revokes the user's
tokens and their leases: required for database, PKI, SSH and path roles), LIST on sys/policies/acl (the sweeper also finds policies with no user), the
identity additions (auth/token/lookup-accessor: grants never promise past the caller's
token; identity/entity/name/apono-* and identity/entity-alias: each grant user gets an
entity that is removed with it), and the discovery reads of each KV v2 and Transit mount. Each check says ok or missing, with the
capabilities the token has and needs. A Vault that is down is reported, not an error.
`

var healthResponseFields = map[string]*framework.FieldSchema{
	"status": {Type: framework.TypeString,
		Description: "ok (all required checks pass), degraded (a required capability is missing), down (Vault unreachable or sealed, or login fails) or not_configured."},
	"problems": {Type: framework.TypeStringSlice,
		Description: "What to fix for status to be ok."},
	"warnings": {Type: framework.TypeStringSlice,
		Description: "Optional capabilities that are missing, and what the plugin does without them."},
	"vault_addr":     {Type: framework.TypeString, Description: "The Vault address from config."},
	"userpass_mount": {Type: framework.TypeString, Description: "The userpass mount from config."},
	"vault": {Type: framework.TypeMap,
		Description: "sys/health: reachable, initialized, sealed, standby, performance_standby, version, cluster_name, error."},
	"login": {Type: framework.TypeMap,
		Description: "ok, and error when logging in or an authenticated call failed."},
	"capabilities": {Type: framework.TypeSlice,
		Description: "One entry per path: path, purpose, required, needs, has, missing, status (ok, missing or unknown)."},
	"roles_needing_login_revoke": {Type: framework.TypeStringSlice,
		Description: "The roles naming database, PKI, SSH or path resources: while there is one, revoking grant users' logins is a required capability."},
	"revoke_login_tokens": {Type: framework.TypeBool,
		Description: "Whether revoke also revokes the grant user's tokens through sys/leases/revoke-prefix."},
	"grant_entities": {Type: framework.TypeBool,
		Description: "Whether the plugin creates and removes each grant user's identity entity; without it, entities of used grants pile up."},
	"token_lifetime_check": {Type: framework.TypeBool,
		Description: "Whether a grant's end is checked against the lifetime of the token that asked for it."},
}

func (b *aponoBackend) pathHealthRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	cfg, err := config.Get(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return &logical.Response{Data: map[string]interface{}{
			"status":   healthNotConfigured,
			"problems": []string{errNotConfigured.Error()},
			"warnings": []string{},
		}}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	return &logical.Response{Data: b.checkHealth(ctx, req.Storage, cfg)}, nil
}

// checkHealth builds the report; nothing that fails in Vault makes it an error.
func (b *aponoBackend) checkHealth(ctx context.Context, s logical.Storage, cfg *config.Config) map[string]interface{} {
	problems, warnings := []string{}, []string{}
	out := map[string]interface{}{
		"vault_addr":           cfg.VaultAddr,
		"userpass_mount":       cfg.UserpassMount,
		"revoke_login_tokens":  false,
		"grant_entities":       false,
		"token_lifetime_check": false,
		"capabilities":         []map[string]interface{}{},
	}
	finish := func(status string) map[string]interface{} {
		out["status"] = status
		out["problems"] = problems
		out["warnings"] = warnings
		return out
	}
	if queues := b.notify.AllQueues(ctx, s); cfg.NotifyURL != "" || len(queues) > 1 {
		total := 0
		perTarget := map[string]interface{}{}
		for _, q := range queues {
			if q.Name == "" && cfg.NotifyURL == "" {
				continue
			}
			count, oldest, err := q.PendingSummary(ctx)
			total += count
			if q.Name != "" {
				perTarget[q.Name] = map[string]interface{}{"events_pending": count, "oldest_pending_seconds": int64(oldest.Seconds())}
			}
			switch {
			case err != nil:
				warnings = append(warnings, "cannot count the events waiting for "+q.Label()+": "+err.Error())
			case oldest > notify.EventsLateAfter:
				warnings = append(warnings, fmt.Sprintf("%d events wait for %s, the oldest for %s: the receiver does not take them "+
					"(each is tried again every minute for up to %s; Vault's log says why)", count, q.Label(), oldest.Round(time.Second), notify.NotifyMaxAge))
			}
		}
		out["events_pending"] = total
		out["notify_targets"] = perTarget
		refusing := b.notify.RefuseNewFlows(ctx, s)
		out["events_refusing_requests"] = refusing != ""
		if refusing != "" {
			problems = append(problems, refusing)
		}
	}

	client, err := b.getClient(ctx, s)
	if err != nil {
		// No client means login failed; ask sys/health without a token whether Vault is up.
		out["login"] = map[string]interface{}{"ok": false, "error": err.Error()}
		hr, herr := b.healthProbe(ctx, cfg)
		out["vault"] = vaultHealthData(hr, herr)
		if msg := vaultDownProblem(hr, herr); msg != "" {
			problems = append(problems, msg)
		}
		problems = append(problems, "cannot log in to Vault with the configured credentials: "+err.Error())
		return finish(healthDown)
	}
	hr, herr := client.Health(ctx)
	out["vault"] = vaultHealthData(hr, herr)
	if msg := vaultDownProblem(hr, herr); msg != "" {
		out["login"] = map[string]interface{}{"ok": false, "error": "not checked: Vault is not available"}
		problems = append(problems, msg)
		return finish(healthDown)
	}

	checks := b.capabilityChecks(cfg.UserpassMount)
	if mounts, err := client.Mounts(ctx); err == nil {
		checks = append(checks, b.discoveryChecks(mounts)...)
		// Roles whose credentials end only with the grant user's logins make the revoke
		// capability required.
		roles, err := b.grants.RolesNeedingLoginRevoke(ctx, s, mounts, cfg)
		if err != nil {
			warnings = append(warnings, "cannot tell which roles need the login revoke: "+err.Error())
		}
		out["roles_needing_login_revoke"] = access.NonNil(roles)
		if len(roles) > 0 {
			named := roles
			if len(named) > 10 {
				named = append(named[:10:10], fmt.Sprintf("and %d more", len(roles)-10))
			}
			revokePath := grants.RevokeLoginsCheckPath(cfg.UserpassMount, b.grants.ObjectName(grants.ProbeID))
			for i := range checks {
				if checks[i].Path == revokePath {
					checks[i].Required = true
					checks[i].Purpose = fmt.Sprintf("revoke a grant user's tokens with their child leases when the grant ends: required, "+
						"because roles %s give credentials (a database user) that otherwise outlive the grant", strings.Join(named, ", "))
				}
			}
		}
	} else {
		warnings = append(warnings, "discovery capabilities not checked: cannot read sys/mounts: "+err.Error())
	}
	paths := make([]string, 0, len(checks))
	for _, c := range checks {
		paths = append(paths, c.Path)
	}
	has, err := client.CapabilitiesSelf(ctx, paths)
	switch {
	case err == nil:
		out["login"] = map[string]interface{}{"ok": true}
	case vaultapi.IsStatus(err, http.StatusForbidden):
		// Logged in (the client re-logs in on 403 first), but may not ask for capabilities.
		out["login"] = map[string]interface{}{"ok": true}
		problems = append(problems, "sys/capabilities-self: the management token may not call it (needs update), so no capability could be checked")
		has = nil
	default:
		out["login"] = map[string]interface{}{"ok": false, "error": err.Error()}
		problems = append(problems, "an authenticated call to Vault failed: "+err.Error())
		return finish(healthDown)
	}

	entries := make([]map[string]interface{}, 0, len(checks))
	for _, c := range checks {
		entry := map[string]interface{}{
			"path":     c.Path,
			"purpose":  c.Purpose,
			"required": c.Required,
			"needs":    c.Needs,
		}
		got, checked := has[c.Path]
		if !checked {
			entry["status"] = "unknown"
			entries = append(entries, entry)
			continue
		}
		got = sortedCopy(got)
		missing := vaultapi.MissingCapabilities(got, c.Needs)
		entry["has"], entry["missing"] = got, missing
		entry["status"] = "ok"
		if len(missing) > 0 {
			entry["status"] = "missing"
			msg := fmt.Sprintf("%s: missing %s (has %s), needed to %s", c.Path, strings.Join(missing, ", "), capsOrNone(got), c.Purpose)
			if c.Required {
				problems = append(problems, msg)
			} else {
				warnings = append(warnings, msg)
			}
		}
		entries = append(entries, entry)
		// Keep the caches revoke and the sweeper use in step with what was just seen.
		switch c.Path {
		case grants.RevokeLoginsCheckPath(cfg.UserpassMount, b.grants.ObjectName(grants.ProbeID)):
			b.caps.Remember(client, c.Path, len(missing) == 0, vaultapi.CapabilityCacheTTL)
			out["revoke_login_tokens"] = len(missing) == 0
		case grants.PolicyListPath, grants.EntityListPath, grants.EntityAliasPath, b.grants.EntityCheckPath(), sweep.AliasListPath, sweep.EntityByIDCheckPath():
			b.caps.Remember(client, c.Path, len(missing) == 0, vaultapi.CapabilityCacheTTL)
		case grants.TokenLookupPath:
			b.caps.Remember(client, c.Path, len(missing) == 0, vaultapi.CapabilityCacheTTL)
			out["token_lifetime_check"] = len(missing) == 0
		}
	}
	out["capabilities"] = entries
	// Cheaper grants: whether userpass takes password_hash, so Vault hashes nothing.
	out["password_hash_cost"] = cfg.HashCost()
	out["password_hash"] = cfg.HashCost() > 0 && b.grants.SupportsPasswordHash(ctx, client, cfg.UserpassMount)
	if has != nil {
		entitiesOK := len(vaultapi.MissingCapabilities(has[b.grants.EntityCheckPath()], []string{"create", "delete", "update"})) == 0 &&
			len(vaultapi.MissingCapabilities(has[grants.EntityAliasPath], []string{"create", "update"})) == 0
		out["grant_entities"] = entitiesOK
		if !entitiesOK {
			warnings = append(warnings, "grant entities are off: each grant user's first login makes an identity entity that nothing removes, "+
				"so entities pile up (add testdata/apono-identity.hcl to the management policy)")
		}
	}
	if len(problems) > 0 {
		return finish(healthDegraded)
	}
	return finish(healthOK)
}

func capsOrNone(caps []string) string {
	if len(caps) == 0 {
		return "none"
	}
	return strings.Join(caps, ", ")
}

func vaultHealthData(hr *api.HealthResponse, err error) map[string]interface{} {
	if err != nil || hr == nil {
		msg := "no answer"
		if err != nil {
			msg = vaultapi.Redact(err).Error()
		}
		return map[string]interface{}{"reachable": false, "error": msg}
	}
	return map[string]interface{}{
		"reachable":           true,
		"initialized":         hr.Initialized,
		"sealed":              hr.Sealed,
		"standby":             hr.Standby,
		"performance_standby": hr.PerformanceStandby,
		"version":             hr.Version,
		"cluster_name":        hr.ClusterName,
	}
}

// vaultDownProblem says why Vault cannot serve the plugin, or "".
func vaultDownProblem(hr *api.HealthResponse, err error) string {
	switch {
	case err != nil || hr == nil:
		return "Vault is not reachable at the configured address"
	case !hr.Initialized:
		return "Vault is not initialized"
	case hr.Sealed:
		return "Vault is sealed"
	}
	return ""
}

// sortedCopy returns caps sorted, for stable output; never nil.
func sortedCopy(caps []string) []string {
	out := append([]string{}, caps...)
	sort.Strings(out)
	return out
}
