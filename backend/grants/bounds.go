package grants

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/resource"
	"github.com/apono-io/vault-plugin-apono/backend/store"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/hashicorp/go-secure-stdlib/parseutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// What a grant lets its user obtain must end with it. A database credential is leased to
// the grant user's token and dies with it (Remove revokes the user's logins). A PKI or SSH
// certificate cannot be revoked that way, so the grant's policy bounds it when it is made:
//   - PKI: not_after is pinned to the grant's end, or to the PKI role's max_ttl from the
//     pickup when that is sooner (PKI does not apply max_ttl to not_after, so the pin
//     must, or a grant would widen the role);
//   - SSH sign: ttl is pinned to SSHTTL, and the policy loses the sign rule SSHTTL (plus
//     a margin for the periodic job) before the grant ends: SignDeadline, kept in storage
//     and applied by the sweeper on the active node.
const (
	// SignDeadlinePrefix holds one SignDeadline per grant that may sign SSH certificates.
	SignDeadlinePrefix = "ssh-sign-ends/"
	// SignDeadlineMargin covers the periodic job's period (about a minute) and a slow
	// policy write: signing stops at least this long before it must.
	SignDeadlineMargin = 2 * time.Minute
	// DefaultSSHSignTTL is an SSH certificate's lifetime when the SSH role sets no ttl.
	DefaultSSHSignTTL = time.Hour
	// MinSSHSignTTL: a grant too short for certificates this long gets no SSH signing.
	MinSSHSignTTL = 30 * time.Second
)

// SignDeadline is when a grant's policy must lose its SSH sign rules, and the policy to
// write then.
type SignDeadline struct {
	GrantID string    `json:"grant_id"`
	At      time.Time `json:"at"`
	Policy  string    `json:"policy"`
	// Rules are the grant's policy without its SSH sign rules.
	Rules string `json:"rules"`
}

// Bounded is a grant's policy with what bounds it.
type Bounded struct {
	Rules    string
	Bounds   resource.Bounds
	Deadline *SignDeadline // nil: nothing to narrow later
	Warnings []string
}

// roleDurations reads ttl and max_ttl of an engine's role (PKI and SSH answer seconds or
// duration strings, depending on the version).
func roleDurations(ctx context.Context, client vaultapi.Client, ref resource.Ref) (ttl, maxTTL time.Duration, err error) {
	data, err := client.Read(ctx, ref.Mount+"/roles/"+ref.Path)
	if err != nil {
		return 0, 0, fmt.Errorf("reading %s role %q (the management policy needs read on %s/roles/*): %w", ref.Type, ref.Path, ref.Mount, err)
	}
	if data == nil {
		return 0, 0, fmt.Errorf("%s role %q does not exist on %s/", ref.Type, ref.Path, ref.Mount)
	}
	get := func(k string) (time.Duration, error) {
		v, ok := data[k]
		if !ok || v == nil {
			return 0, nil
		}
		if n, ok := v.(json.Number); ok {
			v = n.String()
		}
		return parseutil.ParseDurationSecond(v)
	}
	if ttl, err = get("ttl"); err != nil {
		return 0, 0, fmt.Errorf("%s role %q: ttl: %w", ref.Type, ref.Path, err)
	}
	if maxTTL, err = get("max_ttl"); err != nil {
		return 0, 0, fmt.Errorf("%s role %q: max_ttl: %w", ref.Type, ref.Path, err)
	}
	return ttl, maxTTL, nil
}

// BoundedPolicy renders the policy of a grant issued at now that ends at end, reading
// the PKI and SSH roles it names.
func (g *Grants) BoundedPolicy(ctx context.Context, client vaultapi.Client, refs []resource.Ref, permission, policyName string, now, end time.Time) (*Bounded, error) {
	return g.boundedPolicy(ctx, client, []resource.Part{{Resources: refs, Permission: permission}}, policyName, now, end)
}

// boundedPolicy is BoundedPolicy for resources granted with different permissions (a
// bundle's parts).
func (g *Grants) boundedPolicy(ctx context.Context, client vaultapi.Client, parts []resource.Part, policyName string, now, end time.Time) (*Bounded, error) {
	var refs []resource.Ref
	for _, p := range parts {
		refs = append(refs, p.Resources...)
	}
	out := &Bounded{Bounds: resource.Bounds{NotAfter: map[string]time.Time{}, SSHTTL: map[string]time.Duration{}}}
	var signAt time.Time
	for _, ref := range refs {
		switch {
		case ref.Type == resource.TypePKI:
			_, maxTTL, err := roleDurations(ctx, client, ref)
			if err != nil {
				return nil, err
			}
			notAfter := end
			if maxTTL > 0 && now.Add(maxTTL).Before(notAfter) {
				notAfter = now.Add(maxTTL)
			}
			out.Bounds.NotAfter[ref.Name] = notAfter.Truncate(time.Second)
			out.Warnings = append(out.Warnings, fmt.Sprintf("%s: send not_after=%s (the grant's policy takes no other value; ttl is refused)",
				ref.Name, resource.NotAfterValue(notAfter)))
		case ref.Type == resource.TypeSSH && ref.Endpoint == "sign":
			ttl, maxTTL, err := roleDurations(ctx, client, ref)
			if err != nil {
				return nil, err
			}
			if ttl <= 0 {
				ttl = DefaultSSHSignTTL
			}
			if maxTTL > 0 && ttl > maxTTL {
				ttl = maxTTL
			}
			if ttl < MinSSHSignTTL {
				out.Warnings = append(out.Warnings, fmt.Sprintf("%s: the SSH role's ttl or max_ttl is under %s; the grant signs no certificates", ref.Name, MinSSHSignTTL))
				continue
			}
			// Half of what is left after the margin: signing lasts at least as long as the
			// certificates it makes.
			if room := (end.Sub(now) - SignDeadlineMargin) / 2; ttl > room {
				ttl = room.Truncate(time.Second)
			}
			if ttl < MinSSHSignTTL {
				out.Warnings = append(out.Warnings, fmt.Sprintf("%s: the grant is too short to sign SSH certificates that end before it does; it signs none", ref.Name))
				continue
			}
			out.Bounds.SSHTTL[ref.Name] = ttl
			at := end.Add(-ttl - SignDeadlineMargin)
			if signAt.IsZero() || at.Before(signAt) {
				signAt = at
			}
			out.Warnings = append(out.Warnings, fmt.Sprintf("%s: send ttl=%s; signing ends at %s so that no certificate outlives the grant",
				ref.Name, resource.SSHTTLValue(ttl), at.UTC().Format(time.RFC3339)))
		}
	}
	policy, err := resource.PartsPolicy(parts, out.Bounds)
	if err != nil {
		return nil, err // validated already: a failure here is a bug
	}
	if out.Rules, err = policy.Render(); err != nil {
		return nil, err
	}
	if !signAt.IsZero() {
		narrowed := out.Bounds
		narrowed.SSHTTL = nil
		after, err := resource.PartsPolicy(parts, narrowed)
		if err != nil {
			return nil, err
		}
		rules, err := after.Render()
		if err != nil {
			return nil, err
		}
		out.Deadline = &SignDeadline{At: signAt, Policy: policyName, Rules: rules}
	}
	return out, nil
}

// PutSignDeadline stores when the grant's SSH signing ends.
func PutSignDeadline(ctx context.Context, s logical.Storage, d *SignDeadline) error {
	e, err := logical.StorageEntryJSON(SignDeadlinePrefix+d.GrantID, d)
	if err != nil {
		return err
	}
	return s.Put(ctx, e)
}

// DeleteSignDeadline forgets a grant's SSH signing deadline; gone already is fine.
func DeleteSignDeadline(ctx context.Context, s logical.Storage, grantID string) error {
	return s.Delete(ctx, SignDeadlinePrefix+grantID)
}

// EndDueSigning narrows the policy of every grant whose SSH signing deadline has come,
// under the grant's lock; a grant that is gone has nothing to narrow (its policy is
// deleted). It returns how many policies it narrowed.
func (g *Grants) EndDueSigning(ctx context.Context, s logical.Storage, client vaultapi.Client, now time.Time) (int, error) {
	ids, err := s.List(ctx, SignDeadlinePrefix)
	if err != nil {
		return 0, err
	}
	narrowed := 0
	for _, id := range ids {
		entry, err := s.Get(ctx, SignDeadlinePrefix+id)
		if err != nil || entry == nil {
			if err != nil {
				return narrowed, err
			}
			continue
		}
		var d SignDeadline
		if err := entry.DecodeJSON(&d); err != nil {
			return narrowed, fmt.Errorf("decoding the SSH signing deadline of grant %s: %w", id, err)
		}
		if now.Before(d.At) {
			continue
		}
		done, err := g.endSigning(ctx, s, client, id, &d)
		if err != nil {
			return narrowed, err
		}
		if done {
			narrowed++
		}
	}
	return narrowed, nil
}

func (g *Grants) endSigning(ctx context.Context, s logical.Storage, client vaultapi.Client, id string, d *SignDeadline) (bool, error) {
	defer g.Locks.Lock(id)()
	rec, err := store.GetGrant(ctx, s, id)
	if err != nil {
		return false, err
	}
	if rec != nil {
		if err := client.WritePolicy(ctx, d.Policy, d.Rules); err != nil {
			return false, fmt.Errorf("ending SSH signing of grant %s: %w", id, err)
		}
		g.logger().Info("SSH signing of a grant ended before the grant, so no certificate outlives it", "grant_id", id, "policy", d.Policy)
	}
	return rec != nil, DeleteSignDeadline(ctx, s, id)
}
