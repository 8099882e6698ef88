package backend

import (
	"context"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apono-io/vault-plugin-apono/portal"
)

// uiUnauthenticated are the PathsSpecial.Unauthenticated entries for the portal: the page
// and its files hold no secret, and every action they take is a call with the person's
// own token.
var uiUnauthenticated = []string{"ui", "ui/*"}

func pathUI(b *aponoBackend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "ui$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "portal",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: b.pathUIRead,
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"}},
			},
			HelpSynopsis:    "The access portal: a page for people to ask for, approve and pick up access.",
			HelpDescription: pathUIHelp,
		},
		{
			Pattern: "ui/(?P<file>.*)",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "apono",
				OperationSuffix: "portal-file",
			},
			Fields: map[string]*framework.FieldSchema{
				"file": {Type: framework.TypeString, Description: "A file the portal page loads (app.js, style.css...)."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: b.pathUIRead,
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"}},
			},
			HelpSynopsis:    "The files the access portal's page loads.",
			HelpDescription: pathUIHelp,
		},
	}
}

const pathUIHelp = `
Open <vault address>/v1/<mount>/ui in a browser. The page and its files are static and
unauthenticated; signing in (userpass, LDAP, OIDC or a token) gives the page the person's
own Vault token, kept in the browser tab's sessionStorage, and every action is a call to
the Vault API with it, so Vault's ACLs and the plugin's rules decide as for the CLI.
Serve it from a listener whose custom_response_headers set a Content-Security-Policy
(see the README).
`

func (b *aponoBackend) pathUIRead(_ context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	file, _ := d.GetOk("file")
	name, _ := file.(string)
	if req.Path == "ui/" || name == portal.Index {
		// The page's links are relative to <mount>/ui; from ui/ they would miss.
		return &logical.Response{Redirect: "/v1/" + strings.TrimSuffix(req.MountPoint, "/") + "/ui"}, nil
	}
	return portal.Response(name), nil
}
