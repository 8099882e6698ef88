package backend

import (
	"context"
	"fmt"
	"strings"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathConfig(b *aponoBackend) *framework.Path {
	return &framework.Path{
		Pattern: "config",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "apono",
		},
		Fields: map[string]*framework.FieldSchema{
			"vault_addr": {
				Type: framework.TypeString,
				Description: "Address of the Vault API the plugin calls back into, e.g. https://vault.example.com:8200: https://, or http:// to a loopback address only. " +
					"Required. A write that changes it (or namespace, approle_mount, ca_cert, tls_server_name, tls_skip_verify) must send the credentials again.",
				DisplayAttrs: &framework.DisplayAttributes{
					Name: "Vault address",
				},
			},
			"role_id": {
				Type:        framework.TypeString,
				Description: "AppRole role_id of the apono-plugin role (policy apono-management).",
				DisplayAttrs: &framework.DisplayAttributes{
					Name: "AppRole role ID",
				},
			},
			"secret_id": {
				Type:        framework.TypeString,
				Description: "AppRole secret_id. Write-only: a read says only whether it is set.",
				DisplayAttrs: &framework.DisplayAttributes{
					Name:      "AppRole secret ID",
					Sensitive: true,
				},
			},
			"approle_mount": {
				Type:        framework.TypeString,
				Description: "Mount path of the AppRole auth method.",
				Default:     config.DefaultAppRoleMount,
			},
			"token": {
				Type:        framework.TypeString,
				Description: "A Vault token to use instead of AppRole. Write-only: a read says only whether it is set.",
				DisplayAttrs: &framework.DisplayAttributes{
					Sensitive: true,
				},
			},
			"ca_cert": {
				Type:        framework.TypeString,
				Description: "PEM-encoded CA certificate(s) to verify Vault's TLS certificate.",
			},
			"tls_server_name": {
				Type:        framework.TypeString,
				Description: "Server name (SNI) to verify Vault's TLS certificate against.",
			},
			"tls_skip_verify": {
				Type:        framework.TypeBool,
				Description: "Skip TLS verification. Only for testing.",
				Default:     false,
			},
			"namespace": {
				Type: framework.TypeString,
				Description: "The namespace (OpenBao, Vault Enterprise) this mount is in, e.g. team-a or team-a/payments: the plugin logs in with the AppRole " +
					"of that namespace and makes every call there (users, policies, entities, discovery, the sweeper). Empty: the root namespace. " +
					"A write that changes it must send the credentials again.",
				DisplayAttrs: &framework.DisplayAttributes{
					Name: "Namespace",
				},
			},
			"userpass_mount": {
				Type:        framework.TypeString,
				Description: "Mount path of the userpass auth method grants create users in.",
				Default:     config.DefaultUserpassMount,
			},
			"access_details": {
				Type:        framework.TypeString,
				Description: fmt.Sprintf("Instructions returned with every grant on how to use the access (at most %d characters).", config.MaxAccessDetailsLen),
			},
			"password_policy": {
				Type:        framework.TypeString,
				Description: "Name of a Vault password policy for grant passwords. Default: 32 random base62 characters.",
			},
			"password_hash_cost": {
				Type: framework.TypeInt,
				Description: fmt.Sprintf("Where userpass takes password_hash (Vault 1.17+, OpenBao 2.6+), the plugin hashes each grant's random password itself "+
					"with bcrypt at this cost (%d to %d), so Vault spends no bcrypt time on a grant; 0 lets Vault hash it. Default: %d.",
					config.MinPasswordHashCost, config.MaxPasswordHashCost, config.DefaultPasswordHashCost),
			},
			"resource_types": {
				Type: framework.TypeCommaStringSlice,
				Description: "Which resource types apono/sync discovers: kv (KV v2 secrets and folders), transit (Transit keys), database " +
					"(creds/<role> and static-creds/<role>), pki (issue/<role> and sign/<role>), ssh (sign/<role> of CA roles, creds/<role> of OTP ones). " +
					"Default: all of them.",
			},
			"grantable_path_prefixes": {
				Type: framework.TypeCommaStringSlice,
				Description: "Prefixes (each ending in /, e.g. consul/creds/) below which a role may name a path resource: an exact path or a folder/* " +
					"on a mount that is not KV v2, Transit, database, PKI or SSH (a Consul or Nomad role, a custom plugin). Never sys/, auth/, identity/, " +
					"cubbyhole/ or this plugin's mount. Default: none, so no path resource can be granted.",
				DisplayAttrs: &framework.DisplayAttributes{Name: "Grantable path prefixes"},
			},
			"owner_metadata_key": {
				Type:        framework.TypeString,
				Description: fmt.Sprintf("A KV v2 custom_metadata key (e.g. owner) whose value apono/sync reports as each secret's owner. Needs integration_owner, the fallback. At most %d characters.", config.MaxOwnerMetadataKeyLen),
			},
			"integration_owner": {
				Type: framework.TypeString,
				Description: fmt.Sprintf("Fallback approver: the owner of every resource that names none of its own (Transit keys, folders, secrets without an owner tag). "+
					"An identity group name, or a comma-separated list of group:<name> and entity:<name> (at most %d characters).", config.MaxIntegrationOwnerLen),
			},
			"notify_url": {
				Type: framework.TypeString,
				Description: "Where to POST a JSON event for each access-flow step (request created, approved, denied, cancelled, expired; " +
					"grant issued, revoked; break-glass used): https://..., or http:// on a loopback address only. Empty: no events. " +
					"A read shows only its scheme and host (webhook URLs often hold a secret in their path).",
				DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
			},
			"notify_secret": {
				Type:         framework.TypeString,
				Description:  "Key for the HMAC-SHA256 signature of each event body, sent as X-Apono-Signature-256: sha256=<hex>. Write-only.",
				DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
			},
			"notify_allowed_hosts": {
				Type: framework.TypeCommaStringSlice,
				Description: "Where notifications (notify_url and the notify/<name> targets) may go. Empty (the default): any public host, " +
					"and loopback; private addresses (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) are refused. Set: only the hosts listed, loopback " +
					"included. " + strings.ToUpper(notify.NotifyAllowedHostsRule[:1]) + notify.NotifyAllowedHostsRule[1:] + ". A host name entry allows whatever the name resolves to. " +
					"Never allowed, listed or not: link-local (169.254.0.0/16, fe80::/10), unspecified, multicast and broadcast addresses, and Vault's " +
					"own listener (vault_addr's host and port, that port on loopback). Checked when a URL is written and on every address a delivery dials.",
			},
			"notify_ca_cert": {
				Type:        framework.TypeString,
				Description: "PEM-encoded CA certificate(s) to verify notify_url's TLS certificate (a private CA). Default: the system's.",
			},
			"history_retention": {
				Type:        framework.TypeDurationSecond,
				Description: fmt.Sprintf("How long the history of ended grants (apono/history) stays. Default: %s.", config.DefaultHistoryRetention),
			},
			"portal_url": {
				Type:        framework.TypeString,
				Description: "The access portal's address, for the links in chat messages, e.g. https://vault.example.com/v1/apono/ui. Default: vault_addr followed by /v1/<mount>ui.",
			},
			"request_retention": {
				Type:        framework.TypeDurationSecond,
				Description: fmt.Sprintf("How long ended requests (granted, denied, cancelled, expired) stay readable before a periodic job removes them. Default: %s.", config.DefaultRequestRetention),
			},
			"max_resources_per_request": {
				Type:        framework.TypeInt,
				Description: fmt.Sprintf("Most resources one request or grant may name (1 to %d). Default: %d.", config.MaxMaxResourcesPerRequest, config.DefaultMaxResourcesPerRequest),
			},
			"max_open_requests": {
				Type:        framework.TypeInt,
				Description: fmt.Sprintf("Most open requests (pending, or approved and not picked up) one person may have at a time (1 to %d). Default: %d.", config.MaxMaxOpenRequests, config.DefaultMaxOpenRequests),
			},
			"max_folder_secrets": {
				Type: framework.TypeInt,
				Description: fmt.Sprintf("A request for a KV folder reads the owner tag of every secret below it; a folder holding more secrets than this is refused (1 to %d). Default: %d.",
					config.MaxMaxFolderSecrets, config.DefaultMaxFolderSecrets),
			},
			"sync_interval": {
				Type:        framework.TypeDurationSecond,
				Description: fmt.Sprintf("How often the active node refreshes the resource snapshot in the background; 0 turns it off, otherwise at least %s. Default: %s.", config.MinSyncInterval, config.DefaultSyncInterval),
			},
			"sync_concurrency": {
				Type:        framework.TypeInt,
				Description: fmt.Sprintf("How many LIST and read calls apono/sync makes to Vault at once (1 to %d). Default: %d.", config.MaxSyncConcurrency, config.DefaultSyncConcurrency),
			},
			"max_resources": {
				Type:        framework.TypeInt,
				Description: fmt.Sprintf("apono/sync stops with an error once it has found more resources than this (1 to %d). Default: %d.", config.MaxMaxResources, config.DefaultMaxResources),
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathConfigRead,
				DisplayAttrs: &framework.DisplayAttributes{
					OperationSuffix: "configuration",
				},
			},
			logical.CreateOperation: &framework.PathOperation{
				Callback:                    b.pathConfigWrite,
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				DisplayAttrs: &framework.DisplayAttributes{
					OperationVerb: "configure",
				},
			},
			logical.UpdateOperation: &framework.PathOperation{
				Callback:                    b.pathConfigWrite,
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				DisplayAttrs: &framework.DisplayAttributes{
					OperationVerb: "configure",
				},
			},
			logical.DeleteOperation: &framework.PathOperation{
				Callback:                    b.pathConfigDelete,
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				DisplayAttrs: &framework.DisplayAttributes{
					OperationSuffix: "configuration",
				},
			},
		},
		ExistenceCheck:  b.pathConfigExists,
		HelpSynopsis:    "Configure how the plugin reaches and logs in to Vault.",
		HelpDescription: pathConfigHelp,
	}
}

const pathConfigHelp = `
The plugin calls back into Vault (vault_addr) to create userpass users and apono-* ACL
policies. It logs in with an AppRole (role_id, secret_id, approle_mount) whose policy is
apono-management, or uses a token. A write logs in before it saves: bad credentials are
rejected and the previous config stays. vault_addr is https://, or http:// to a loopback
address only. A mount in a namespace (OpenBao, Vault Enterprise) names it in namespace,
and its AppRole is that namespace's. A write that changes vault_addr, namespace,
approle_mount, ca_cert, tls_server_name or tls_skip_verify must send the credentials
again (role_id and secret_id, or token): the stored ones are never sent to a new
destination. A read never returns secret_id or token; it says
whether each is set. Fields left out of a write keep their current values.

resource_types, owner_metadata_key, integration_owner, sync_interval, sync_concurrency
and max_resources tune discovery (apono/sync, apono/resources). owner_metadata_key and
integration_owner also name the approvers of access flows (roles with approvers=owner).

notify_url, notify_secret and notify_ca_cert send a signed JSON event for every step of
an access flow; request_retention says how long ended requests stay readable.
notify_allowed_hosts limits where notify_url and the notify/<name> targets may point
(default: public hosts and loopback; never link-local addresses or Vault's own listener).
max_resources_per_request, max_open_requests and max_folder_secrets bound what one
request may ask for and how many one person may have open.
`

func (b *aponoBackend) pathConfigExists(ctx context.Context, req *logical.Request, _ *framework.FieldData) (bool, error) {
	cfg, err := config.Get(ctx, req.Storage)
	return cfg != nil, err
}

func (b *aponoBackend) pathConfigRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	cfg, err := config.Get(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, nil
	}
	return &logical.Response{Data: configResponseData(cfg)}, nil
}

// configResponseData is everything in cfg except the secrets, and whether each is set.
func configResponseData(cfg *config.Config) map[string]interface{} {
	return map[string]interface{}{
		"vault_addr":         cfg.VaultAddr,
		"role_id":            cfg.RoleID,
		"secret_id_set":      cfg.SecretID != "",
		"approle_mount":      cfg.AppRoleMount,
		"token_set":          cfg.Token != "",
		"ca_cert":            cfg.CACert,
		"tls_server_name":    cfg.TLSServerName,
		"tls_skip_verify":    cfg.TLSSkipVerify,
		"namespace":          cfg.Namespace,
		"userpass_mount":     cfg.UserpassMount,
		"access_details":     cfg.AccessDetails,
		"password_policy":    cfg.PasswordPolicy,
		"password_hash_cost": cfg.HashCost(),
		// Discovery settings, with defaults applied.
		"resource_types":          cfg.TypesToDiscover(),
		"owner_metadata_key":      cfg.OwnerMetadataKey,
		"integration_owner":       cfg.IntegrationOwner,
		"sync_interval":           int64(cfg.SyncEvery().Seconds()),
		"sync_concurrency":        cfg.SyncWorkers(),
		"max_resources":           cfg.ResourceLimit(),
		"grantable_path_prefixes": access.NonNil(cfg.GrantablePathPrefixes),
		// Access flows.
		"notify_url":           notify.RedactURL(cfg.NotifyURL),
		"notify_secret_set":    cfg.NotifySecret != "",
		"notify_ca_cert":       cfg.NotifyCACert,
		"notify_allowed_hosts": access.NonNil(notify.SplitAllowedHosts(cfg.NotifyAllowedHosts)),
		"request_retention":    int64(cfg.KeepRequestsFor().Seconds()),
		"portal_url":           cfg.PortalURL,
		"history_retention":    int64(cfg.KeepHistoryFor().Seconds()),
		// Bounds of access flows, with defaults applied.
		"max_resources_per_request": cfg.ResourcesPerRequestLimit(),
		"max_open_requests":         cfg.OpenRequestsLimit(),
		"max_folder_secrets":        cfg.FolderSecretsLimit(),
	}
}

func (b *aponoBackend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	if resp := rejectUnknownFields(req, d.Schema); resp != nil {
		return resp, nil
	}
	old, err := config.Get(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	cfg := &config.Config{AppRoleMount: config.DefaultAppRoleMount, UserpassMount: config.DefaultUserpassMount}
	if old != nil {
		*cfg = *old
	}

	setString := func(field string, dst *string) {
		if v, ok := d.GetOk(field); ok {
			*dst = strings.TrimSpace(v.(string))
		}
	}
	setString("vault_addr", &cfg.VaultAddr)
	setString("approle_mount", &cfg.AppRoleMount)
	setString("ca_cert", &cfg.CACert)
	setString("tls_server_name", &cfg.TLSServerName)
	if v, ok := d.GetOk("namespace"); ok {
		cfg.Namespace = config.NormalizeNamespace(v.(string))
	}
	setString("userpass_mount", &cfg.UserpassMount)
	setString("password_policy", &cfg.PasswordPolicy)
	if v, ok := d.GetOk("access_details"); ok {
		cfg.AccessDetails = v.(string)
	}
	if v, ok := d.GetOk("tls_skip_verify"); ok {
		cfg.TLSSkipVerify = v.(bool)
	}
	if msg := setDiscoveryConfig(cfg, d, req.MountPoint); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if msg := setNotifyConfig(cfg, d); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if msg := setPasswordHashCost(cfg, d); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if msg := setFlowLimits(cfg, d); msg != "" {
		return logical.ErrorResponse(msg), nil
	}

	// Credentials: AppRole or a token, never both. Sending one kind replaces the other.
	_, roleSent := d.GetOk("role_id")
	_, secretSent := d.GetOk("secret_id")
	_, tokenSent := d.GetOk("token")
	if tokenSent && (roleSent || secretSent) {
		return logical.ErrorResponse("set either role_id and secret_id (AppRole) or token, not both"), nil
	}
	if roleSent || secretSent {
		setString("role_id", &cfg.RoleID)
		setString("secret_id", &cfg.SecretID)
		cfg.Token = ""
	}
	if tokenSent {
		setString("token", &cfg.Token)
		cfg.RoleID, cfg.SecretID = "", ""
	}

	if msg := config.Validate(cfg); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if msg, err := b.checkTargetsUnder(ctx, req.Storage, d, cfg); err != nil || msg != "" {
		if err != nil {
			return nil, err
		}
		return logical.ErrorResponse(msg), nil
	}
	// The stored credentials go only where, and over the TLS, they were written for: a
	// write that changes that must bring them again (whoever may only update this path
	// must not learn them by pointing the plugin at a server of theirs). Checked before
	// anything connects.
	if changed := connectionChanges(old, cfg); len(changed) > 0 && !tokenSent && !(roleSent && secretSent) {
		return logical.ErrorResponse(fmt.Sprintf("%s changes where or how the plugin connects to Vault, and the plugin never sends its stored "+
			"credentials to a new destination: send them again in the same write (role_id and secret_id, or token); nothing was saved",
			strings.Join(changed, ", "))), nil
	}

	// Log in before saving, so bad credentials never replace a working config.
	client, err := b.newClient(ctx, cfg, b.Logger())
	if err != nil {
		return logical.ErrorResponse(fmt.Sprintf("cannot log in to Vault at %s with the given credentials; nothing was saved: %s", cfg.VaultAddr, err)), nil
	}

	entry, err := logical.StorageEntryJSON(config.StoragePath, cfg)
	if err != nil {
		client.Close()
		return nil, err
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		client.Close()
		return nil, err
	}
	b.setCachedConfig(cfg)
	b.setClient(client)
	return nil, nil
}

// connectionChanges names the fields that say where or how the plugin logs in to Vault
// and differ between the stored config old (nil: none yet) and cfg.
func connectionChanges(old, cfg *config.Config) []string {
	if old == nil {
		return nil
	}
	var out []string
	if strings.TrimSuffix(old.VaultAddr, "/") != strings.TrimSuffix(cfg.VaultAddr, "/") {
		out = append(out, "vault_addr")
	}
	if old.AppRoleMount != cfg.AppRoleMount {
		out = append(out, "approle_mount")
	}
	if old.CACert != cfg.CACert {
		out = append(out, "ca_cert")
	}
	if old.TLSServerName != cfg.TLSServerName {
		out = append(out, "tls_server_name")
	}
	if old.TLSSkipVerify != cfg.TLSSkipVerify {
		out = append(out, "tls_skip_verify")
	}
	if old.Namespace != cfg.Namespace {
		out = append(out, "namespace")
	}
	return out
}

func (b *aponoBackend) pathConfigDelete(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	// Revoking a grant needs the Vault client; deleting config under live grants would
	// leave their users and policies with no way to be removed.
	active, err := store.ListGrantIDs(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if len(active) > 0 {
		return logical.ErrorResponse(fmt.Sprintf("%d grants are still active and need this config to be revoked; revoke them first (vault lease revoke -prefix %sgrants)", len(active), req.MountPoint)), nil
	}
	if err := req.Storage.Delete(ctx, config.StoragePath); err != nil {
		return nil, err
	}
	b.setCachedConfig(nil)
	b.resetClient()
	return nil, nil
}
