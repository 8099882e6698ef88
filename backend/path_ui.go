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

A request for the page or a file with X-Vault-Wrap-TTL is refused (400): wrapping an
unauthenticated answer would make a new token and a stored copy of the file for anyone
who asks, with no token at all.
`

// uiWrapRefused is the answer to a wrapped request for the portal.
const uiWrapRefused = "the portal's page and files are never response-wrapped: send the request without " +
	"the X-Vault-Wrap-TTL header (wrapping an unauthenticated answer would mint a token for anyone who asks)"

func (b *aponoBackend) pathUIRead(_ context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	// The paths are unauthenticated: Vault would wrap whatever non-error answer the plugin
	// gives, making a token and a cubbyhole copy per anonymous request. Only an error
	// response is never wrapped, so this comes before the redirect and the 404 too.
	if req.WrapInfo != nil {
		return logical.ErrorResponse(uiWrapRefused), nil
	}
	file, _ := d.GetOk("file")
	name, _ := file.(string)
	if req.Path == "ui/" || name == portal.Index {
		// The page's links are relative to <mount>/ui; from ui/ they would miss.
		return &logical.Response{Redirect: "/v1/" + strings.TrimSuffix(req.MountPoint, "/") + "/ui"}, nil
	}
	return portal.Response(name), nil
}
