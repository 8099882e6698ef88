package resource

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"
)

// ACLPolicy is a Vault ACL policy as a Go value. Vault accepts policies in JSON, so the
// policy is rendered with encoding/json and no user input is ever pasted into HCL.
type ACLPolicy struct {
	Path map[string]*pathRule `json:"path"`
}

type pathRule struct {
	Capabilities []string `json:"capabilities"`
	// AllowedParameters, when set, are the only request fields the rule allows ("*" for
	// any other) and, where a field lists values, the only values it takes.
	AllowedParameters map[string][]interface{} `json:"allowed_parameters,omitempty"`
	// RequiredParameters must be in every request (Vault accepts an empty value, which
	// AllowedParameters then refuses).
	RequiredParameters []string `json:"required_parameters,omitempty"`
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

// pin lets path's rule take field only with exactly value, and every field must be sent.
func (p *ACLPolicy) pin(path, field, value string) {
	rule := p.Path[path]
	if rule.AllowedParameters == nil {
		rule.AllowedParameters = map[string][]interface{}{"*": {}}
	}
	rule.AllowedParameters[field] = []interface{}{value}
	if !slices.Contains(rule.RequiredParameters, field) {
		rule.RequiredParameters = append(rule.RequiredParameters, field)
		sort.Strings(rule.RequiredParameters)
	}
}

// Bounds are the limits a grant puts on what it lets its user obtain, by resource name.
type Bounds struct {
	// NotAfter pins the not_after of every certificate a PKI resource issues or signs
	// (RFC 3339, what PKI's not_after takes): no later than the grant's end nor the PKI
	// role's max_ttl from the pickup.
	NotAfter map[string]time.Time
	// SSHTTL pins the ttl of every certificate an SSH sign resource signs; the grant's
	// policy loses the rule SSHTTL before the grant ends (grants.SignDeadline), so no
	// certificate outlives it. Absent: the rule is not granted at all.
	SSHTTL map[string]time.Duration
}

// NotAfterValue is a PKI not_after as the policy pins it and as the user must send it.
func NotAfterValue(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// SSHTTLValue is an SSH ttl as the policy pins it and as the user must send it.
func SSHTTLValue(d time.Duration) string { return strconv.Itoa(int(d/time.Second)) + "s" }

// GrantPolicy turns validated resources and one permission into a policy. Every
// resource must be of a type the permission applies to. A PKI resource needs its
// NotAfter in b; an SSH sign resource without its SSHTTL is left out.
func GrantPolicy(resources []Ref, permission string, b Bounds) (*ACLPolicy, error) {
	return PartsPolicy([]Part{{Resources: resources, Permission: permission}}, b)
}

// Part is resources granted with one permission: a bundle's grant has one per role entry.
type Part struct {
	Resources  []Ref
	Permission string
}

// PartsPolicy is GrantPolicy for resources granted with different permissions: one
// policy holding every part's rules.
func PartsPolicy(parts []Part, b Bounds) (*ACLPolicy, error) {
	p := &ACLPolicy{Path: map[string]*pathRule{}}
	for _, part := range parts {
		if err := addPart(p, part.Resources, part.Permission, b); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func addPart(p *ACLPolicy, resources []Ref, permission string, b Bounds) error {
	for _, r := range resources {
		if PermissionTypes[permission] != r.Type {
			return fmt.Errorf("permission %q does not apply to %s resource %q (allowed: %v)", permission, r.Type, r.Name, PermissionsFor(r.Type))
		}
		switch r.Type {
		case TypeKV:
			addKVRules(p, r, permission)
		case TypeTransit:
			addTransitRules(p, r, permission)
		case TypeDatabase:
			// creds/<role> makes a new database user leased to the reading token; static-creds
			// reads the current password of a static role.
			p.allow(r.Mount+"/"+r.Endpoint+"/"+r.Path, "read")
		case TypePKI:
			end, ok := b.NotAfter[r.Name]
			if !ok {
				return fmt.Errorf("PKI resource %q has no not_after bound", r.Name)
			}
			path := r.Mount + "/" + r.Endpoint + "/" + r.Path
			p.allow(path, "update")
			p.pin(path, "not_after", NotAfterValue(end))
			// ttl and not_after together are refused by PKI; ttl alone would not be pinned.
			p.deny(path, "ttl")
		case TypeSSH:
			path := r.Mount + "/" + r.Endpoint + "/" + r.Path
			if r.Endpoint == "creds" {
				p.allow(path, "update")
				continue
			}
			ttl, ok := b.SSHTTL[r.Name]
			if !ok {
				continue
			}
			p.allow(path, "update")
			p.pin(path, "ttl", SSHTTLValue(ttl))
		case TypePath:
			addPathRules(p, r, permission)
		}
	}
	return nil
}

func addPathRules(p *ACLPolicy, r Ref, permission string) {
	var caps []string
	switch permission {
	case "path-read":
		caps = []string{"read"}
	case "path-update":
		caps = []string{"update"}
	case "path-write":
		caps = []string{"create", "read", "update", "patch", "delete"}
	}
	if r.Folder {
		if permission != "path-update" {
			caps = append(caps, "list")
		}
		p.allow(r.Mount+"/"+r.Path+"/*", caps...)
		return
	}
	p.allow(r.Mount+"/"+r.Path, caps...)
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
