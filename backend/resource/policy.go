package resource

import (
	"encoding/json"
	"fmt"
	"sort"
)

// ACLPolicy is a Vault ACL policy as a Go value. Vault accepts policies in JSON, so the
// policy is rendered with encoding/json and no user input is ever pasted into HCL.
type ACLPolicy struct {
	Path map[string]*pathRule `json:"path"`
}

type pathRule struct {
	Capabilities []string `json:"capabilities"`
	// DeniedParameters are request fields the rule never allows, whatever their value.
	DeniedParameters map[string][]interface{} `json:"denied_parameters,omitempty"`
}

// deny forbids the fields on path's rule (which must exist).
func (p *ACLPolicy) deny(path string, fields ...string) {
	rule := p.Path[path]
	if rule.DeniedParameters == nil {
		rule.DeniedParameters = map[string][]interface{}{}
	}
	for _, f := range fields {
		rule.DeniedParameters[f] = []interface{}{}
	}
}

func (p *ACLPolicy) allow(path string, caps ...string) {
	rule, ok := p.Path[path]
	if !ok {
		rule = &pathRule{}
		p.Path[path] = rule
	}
	seen := make(map[string]bool, len(rule.Capabilities)+len(caps))
	for _, c := range rule.Capabilities {
		seen[c] = true
	}
	for _, c := range caps {
		if !seen[c] {
			seen[c] = true
			rule.Capabilities = append(rule.Capabilities, c)
		}
	}
	sort.Strings(rule.Capabilities)
}

// GrantPolicy turns validated resources and one permission into a policy. Every
// resource must be of a type the permission applies to.
func GrantPolicy(resources []Ref, permission string) (*ACLPolicy, error) {
	p := &ACLPolicy{Path: map[string]*pathRule{}}
	for _, r := range resources {
		if PermissionTypes[permission] != r.Type {
			return nil, fmt.Errorf("permission %q does not apply to %s resource %q (allowed: %v)", permission, r.Type, r.Name, PermissionsFor(r.Type))
		}
		switch r.Type {
		case TypeKV:
			addKVRules(p, r, permission)
		case TypeTransit:
			addTransitRules(p, r, permission)
		}
	}
	return p, nil
}

// kvPath is M/<prefix>/P for a secret and M/<prefix>/P/* for a folder.
func kvPath(r Ref, prefix string) string {
	p := r.Mount + "/" + prefix + "/" + r.Path
	if r.Folder {
		if r.Path == "" {
			return r.Mount + "/" + prefix + "/*"
		}
		return p + "/*"
	}
	return p
}

func addKVRules(p *ACLPolicy, r Ref, permission string) {
	p.allow(kvPath(r, "data"), "read")
	if r.Folder {
		p.allow(kvPath(r, "metadata"), "read", "list")
	} else {
		// One secret: no list, which on metadata/P would name the keys of a folder P/.
		p.allow(kvPath(r, "metadata"), "read")
	}
	if permission == "read" {
		return
	}
	// delete on data/P is what `vault kv delete` uses; it is the same soft delete as delete/P.
	p.allow(kvPath(r, "data"), "create", "update", "patch", "delete")
	p.allow(kvPath(r, "delete"), "update")
	p.allow(kvPath(r, "undelete"), "update")
	if permission == "read-write" {
		return
	}
	p.allow(kvPath(r, "destroy"), "update")
	p.allow(kvPath(r, "metadata"), "create", "update", "patch", "delete")
	// The owner tag in custom_metadata names who approves access to the secret: that is
	// the operator's to set, never the grantee's. (Deleting the metadata deletes the
	// secret, tag and all; a secret written again there has no owner until tagged.)
	p.deny(kvPath(r, "metadata"), "custom_metadata")
}

func addTransitRules(p *ACLPolicy, r Ref, permission string) {
	key := func(op string) string { return r.Mount + "/" + op + "/" + r.Path }
	switch permission {
	case "encrypt":
		p.allow(key("encrypt"), "update")
	case "decrypt":
		p.allow(key("decrypt"), "update")
	case "encrypt-decrypt":
		p.allow(key("encrypt"), "update")
		p.allow(key("decrypt"), "update")
	case "sign-verify":
		// sign/K/<hash> and verify/K/<hash> pick the hash algorithm in the path.
		for _, op := range []string{"sign", "verify"} {
			p.allow(key(op), "update")
			p.allow(key(op)+"/*", "update")
		}
	}
}

func (p *ACLPolicy) Render() (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
