package backend

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// Approver sets of a request, resolved when it is made: each role approver that names a
// group or entity is one set; "owner" adds one set per requested resource, holding the
// owners the resource names (a KV secret's owner_metadata_key custom_metadata, read fresh
// now) or, when it names none, integration_owner.

// Where a set's principals came from.
const (
	setSourceRole        = "role"
	setSourceMetadata    = ownerFromMetadata
	setSourceIntegration = ownerFromIntegration
)

// resolveApproverSets returns the request's approver sets; notes say where an owner could
// not be read and integration_owner stood in; msg is a 400.
func (b *aponoBackend) resolveApproverSets(ctx context.Context, cfg *pluginConfig, role *roleEntry, resources []resourceRef, client vaultClient,
) (sets []approverSet, notes []string, msg string, err error) {
	for _, a := range role.Approvers {
		if a != approverOwner {
			p, perr := parsePrincipal(a)
			if perr != nil {
				return nil, nil, "role approvers: " + perr.Error(), nil
			}
			sets = append(sets, approverSet{Label: p.String(), Principals: []principal{p}, Source: setSourceRole})
			continue
		}
		for _, ref := range resources {
			owners, source, note, msg, err := b.resourceOwners(ctx, cfg, ref, client)
			if err != nil || msg != "" {
				return nil, nil, msg, err
			}
			if note != "" {
				notes = append(notes, note)
			}
			sets = append(sets, approverSet{Label: "owner of " + ref.Name, Principals: owners, Source: source})
		}
	}
	if len(sets) == 0 {
		return nil, nil, "the role names no approvers", nil
	}
	return sets, notes, "", nil
}

// resourceOwners is who owns ref: for a KV v2 secret, the principals its custom_metadata
// names under owner_metadata_key; otherwise (Transit keys, folders, secrets with no or
// an unusable tag) integration_owner.
func (b *aponoBackend) resourceOwners(ctx context.Context, cfg *pluginConfig, ref resourceRef, client vaultClient,
) (owners []principal, source, note, msg string, err error) {
	if ref.Type == resourceTypeKV && !ref.Folder && cfg.OwnerMetadataKey != "" {
		// ref was validated and resolved: only plain path segments reach this path.
		data, rerr := client.Read(ctx, ref.Mount+"/metadata/"+ref.Path)
		switch {
		case rerr == nil:
			if tag := ownerTag(data, cfg.OwnerMetadataKey); tag != "" {
				owners, perr := parsePrincipalList(tag)
				if perr == nil {
					return owners, setSourceMetadata, "", "", nil
				}
				note = fmt.Sprintf("%s: its %s tag is not usable (%s); integration_owner approves instead", ref.Name, cfg.OwnerMetadataKey, perr)
			}
		case isStatus(rerr, http.StatusForbidden):
			note = fmt.Sprintf("%s: the management policy may not read %s/metadata/..., so its owner tag is unknown; integration_owner approves instead", ref.Name, ref.Mount)
		default:
			return nil, "", "", "", fmt.Errorf("reading the owner of %s: %w", ref.Name, redact(rerr))
		}
	}
	if cfg.IntegrationOwner == "" {
		return nil, "", "", fmt.Sprintf("resource %q names no owner and integration_owner is not set in config, so nobody could approve it", ref.Name), nil
	}
	owners, perr := parsePrincipalList(cfg.IntegrationOwner)
	if perr != nil {
		return nil, "", "", "", fmt.Errorf("integration_owner in config: %w", perr)
	}
	return owners, setSourceIntegration, note, "", nil
}

// ownerTag is custom_metadata[key] of a KV v2 metadata read, or "".
func ownerTag(metadata map[string]interface{}, key string) string {
	cm, _ := metadata["custom_metadata"].(map[string]interface{})
	v, _ := cm[key].(string)
	return strings.TrimSpace(v)
}
