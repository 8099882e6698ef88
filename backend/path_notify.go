package backend

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/notify"
	"github.com/apono-io/vault-plugin-apono/internal/textsafe"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Named notification targets, notify/<name>: each a URL, a format (json, slack, teams), a
// secret (json's HMAC), a CA bundle, and the event types it receives. Each has a queue of
// its own (notify-queue/<name>/), with the same durable, ordered, retried delivery and
// the same rules for a full store as the config's notify_url, which stays one json target.

func pathNotify(b *aponoBackend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "notify/" + framework.GenericNameRegex("name") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "notification-target",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": {Type: framework.TypeLowerCaseString, Required: true, Description: "Name of the target: " + access.RoleNameRule + "."},
				"url": {Type: framework.TypeString,
					Description: "Where to POST: https://..., or http:// to a loopback address only; never a link-local address or Vault's own " +
						"listener, and a private address or, once notify_allowed_hosts (config) is set, any host only when that lists it. " +
						"A read shows only its scheme and host (a webhook URL's path is often its secret). Required.",
					DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
				"format": {Type: framework.TypeString, Default: notify.NotifyFormatJSON, AllowedValues: []interface{}{notify.NotifyFormatJSON, notify.NotifyFormatSlack, notify.NotifyFormatTeams},
					Description: "json: the signed event (as notify_url gets it); slack: a Slack incoming-webhook message (Block Kit); " +
						"teams: a Microsoft Teams Workflows webhook message with an Adaptive Card."},
				"secret": {Type: framework.TypeString,
					Description:  "json: key of the HMAC-SHA256 signature of each body, sent as X-Apono-Signature-256. Write-only.",
					DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
				"ca_cert": {Type: framework.TypeString, Description: "PEM-encoded CA certificate(s) for the URL's TLS (a private CA)."},
				"events": {Type: framework.TypeCommaStringSlice,
					Description: "Event types the target receives (" + strings.Join(notify.EventTypes, ", ") + ", or request.* and grant.*). Default: all."},
			},
			ExistenceCheck: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
				t, err := notify.GetTarget(ctx, req.Storage, d.Get("name").(string))
				return t != nil, err
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation:   &framework.PathOperation{Callback: b.pathNotifyRead},
				logical.CreateOperation: &framework.PathOperation{Callback: b.pathNotifyWrite, ForwardPerformanceStandby: true, ForwardPerformanceSecondary: true},
				logical.UpdateOperation: &framework.PathOperation{Callback: b.pathNotifyWrite, ForwardPerformanceStandby: true, ForwardPerformanceSecondary: true},
				logical.DeleteOperation: &framework.PathOperation{Callback: b.pathNotifyDelete, ForwardPerformanceStandby: true, ForwardPerformanceSecondary: true},
			},
			HelpSynopsis:    "A named notification target: a webhook in json, Slack or Teams format.",
			HelpDescription: pathNotifyHelp,
		},
		{
			Pattern: "notify/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "notification-targets",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{Callback: b.pathNotifyList},
			},
			HelpSynopsis:    "List the notification targets.",
			HelpDescription: pathNotifyHelp,
		},
	}
}

const pathNotifyHelp = `
Each target gets the access-flow events it asks for (events; default all), in its
format: json (the event, signed with its secret as notify_url's are), slack (a Slack
incoming-webhook message in Block Kit) or teams (a Microsoft Teams Workflows webhook
message with an Adaptive Card). A chat message says who asks for what, why, for how long,
who can approve and until when, with a link to the request in the access portal
(portal_url in config); decisions tell the requester what happened. No message holds a
password, token or secret_id. Events are stored before the request that caused them
answers and delivered in order, retried, per target (apono/health shows what waits). A
read never returns the secret, and shows only the URL's scheme and host. Deleting a
target drops the events it had not taken.
`

func (b *aponoBackend) pathNotifyRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	t, err := notify.GetTarget(ctx, req.Storage, d.Get("name").(string))
	if err != nil || t == nil {
		return nil, err
	}
	count, oldest, err := b.notify.Queue(t.Name).PendingSummary(ctx)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		"url": notify.RedactURL(t.URL), "format": t.Format, "secret_set": t.Secret != "", "ca_cert": t.CACert,
		"events": access.NonNil(t.Events), "events_pending": count, "oldest_pending_seconds": int64(oldest.Seconds()),
	}}, nil
}

func (b *aponoBackend) pathNotifyList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	names, err := req.Storage.List(ctx, notify.NotifyTargetPrefix)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(names), nil
}

func (b *aponoBackend) pathNotifyWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	if resp := rejectUnknownFields(req, d.Schema); resp != nil {
		return resp, nil
	}
	name := d.Get("name").(string)
	if !access.RoleNameRe.MatchString(name) {
		return logical.ErrorResponse(fmt.Sprintf("name %q is not a valid target name: %s", textsafe.Truncate(name), access.RoleNameRule)), nil
	}
	t, err := notify.GetTarget(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if t == nil {
		if req.Operation == logical.UpdateOperation {
			return logical.ErrorResponse(fmt.Sprintf("notification target %q does not exist", name)), nil
		}
		names, err := req.Storage.List(ctx, notify.NotifyTargetPrefix)
		if err != nil {
			return nil, err
		}
		if len(names) >= notify.MaxNotifyTargets {
			return logical.ErrorResponse(fmt.Sprintf("at most %d notification targets are allowed", notify.MaxNotifyTargets)), nil
		}
		t = &notify.Target{Name: name, Format: notify.NotifyFormatJSON}
	}
	if v, ok := d.GetOk("url"); ok {
		t.URL = strings.TrimSpace(v.(string))
	}
	if t.URL == "" {
		return logical.ErrorResponse("url is required: the webhook to POST to, e.g. https://hooks.slack.com/services/..."), nil
	}
	cfg, err := b.config(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if msg := notify.CheckURL(t.URL, "url", notify.PolicyOf(cfg)); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if v, ok := d.GetOk("format"); ok {
		t.Format = strings.ToLower(strings.TrimSpace(v.(string)))
	}
	if !slices.Contains(notify.NotifyFormats, t.Format) {
		return logical.ErrorResponse(fmt.Sprintf("format %q is not allowed (allowed: %s)", textsafe.Truncate(t.Format), strings.Join(notify.NotifyFormats, ", "))), nil
	}
	if v, ok := d.GetOk("secret"); ok {
		t.Secret = v.(string)
		if len(t.Secret) > 1024 {
			return logical.ErrorResponse("secret must be at most 1024 bytes"), nil
		}
	}
	if v, ok := d.GetOk("ca_cert"); ok {
		t.CACert = strings.TrimSpace(v.(string))
		if t.CACert != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(t.CACert)) {
			return logical.ErrorResponse("ca_cert must hold at least one PEM-encoded certificate"), nil
		}
	}
	if v, ok := d.GetOk("events"); ok {
		t.Events = access.Dedupe(v.([]string))
		for _, e := range t.Events {
			if !slices.Contains(notify.EventTypes, e) && e != "request.*" && e != "grant.*" {
				return logical.ErrorResponse(fmt.Sprintf("events: %q is not an event type (allowed: %s, request.*, grant.*)", textsafe.Truncate(e), strings.Join(notify.EventTypes, ", "))), nil
			}
		}
	}
	entry, err := logical.StorageEntryJSON(notify.NotifyTargetPrefix+name, t)
	if err != nil {
		return nil, err
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, err
	}
	b.notify.DropTargetCache()
	return nil, nil
}

func (b *aponoBackend) pathNotifyDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.rememberMount(req)
	name := d.Get("name").(string)
	if err := req.Storage.Delete(ctx, notify.NotifyTargetPrefix+name); err != nil {
		return nil, err
	}
	b.notify.DropTargetCache()
	// Its queue drops what it had not delivered when it next looks (the target is gone).
	b.notify.Queue(name).Wake()
	return nil, nil
}

// checkTargetsUnder checks every named target's url against the destination rules that a
// config write changing notify_allowed_hosts or vault_addr would put in force, so that no
// target is left pointing where the new rules refuse; the message names the target.
func (b *aponoBackend) checkTargetsUnder(ctx context.Context, s logical.Storage, d *framework.FieldData, cfg *config.Config) (string, error) {
	_, allowSent := d.GetOk("notify_allowed_hosts")
	_, vaultSent := d.GetOk("vault_addr")
	if !allowSent && !vaultSent {
		return "", nil
	}
	targets, err := b.notify.LoadTargets(ctx, s)
	if err != nil {
		return "", err
	}
	p := notify.PolicyOf(cfg)
	for _, t := range targets {
		if msg := notify.CheckURL(t.URL, "notify/"+t.Name+" url", p); msg != "" {
			return "this write would leave a notification target where the rules refuse it (change or delete the target first): " + msg, nil
		}
	}
	return "", nil
}
