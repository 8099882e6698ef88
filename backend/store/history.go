package store

import (
	"context"
	"fmt"
	"time"

	"github.com/apono-io/vault-plugin-apono/backend/access"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	HistoryStoragePrefix = "history/"
	// MaxCSVScanPages bounds the pages (each at most maxScanPerPage index entries) one
	// format=csv answer reads: a filter that skips most entries ends there with a 400.
	MaxCSVScanPages = 20
)

// How a grant ended.
const (
	EndedExpired = "expired" // its lease ran out
	EndedRevoked = "revoked" // revoked before its end (vault lease revoke, revoke-prefix)
	EndedSwept   = "swept"   // removed by the orphan sweeper: Vault had not revoked it
)

// HistoryRecord is one ended grant.
type HistoryRecord struct {
	GrantID         string    `json:"grant_id"`
	Role            string    `json:"role"`
	Requester       string    `json:"requester"`
	RequesterEntity string    `json:"requester_entity_id,omitempty"`
	RequesterKind   string    `json:"requester_kind"`
	Resources       []string  `json:"resources"`
	Permission      string    `json:"permission"`
	IssuedAt        time.Time `json:"issued_at"`
	EndedAt         time.Time `json:"ended_at"`
	Ended           string    `json:"ended"`
	RequestID       string    `json:"request_id,omitempty"`
	Approvers       []string  `json:"approvers,omitempty"`
	BreakGlass      bool      `json:"break_glass,omitempty"`
	Justification   string    `json:"justification,omitempty"`
	// AutoApprovedBy names the auto_approve rule that approved the grant's request (in
	// place of approvers): the request itself is tidied away long before its history.
	AutoApprovedBy string `json:"auto_approved_by,omitempty"`
	// RequestedBy is who asked on behalf of the requester (the grantee), as people know
	// them; empty when the requester asked themself.
	RequestedBy string `json:"requested_by,omitempty"`
	// Bundle and Parts, for a grant picked up from a bundle: each role entry it held.
	Bundle string             `json:"bundle,omitempty"`
	Parts  []access.GrantPart `json:"parts,omitempty"`
}

func HistoryEntries(h *HistoryRecord) []Entry {
	k := NewestFirstKey(h.EndedAt, h.GrantID)
	requester := "s" + HashedName(h.Requester)
	if h.RequesterKind == access.RequesterEntity && h.RequesterEntity != "" {
		requester = "e" + EntityKey(h.RequesterEntity)
	}
	out := []Entry{
		{"hist/all", k}, {"hist/role/" + h.Role, k}, {"hist/requester/" + requester, k},
		{"hist/ended", TimeKey(h.EndedAt, h.GrantID)},
	}
	for _, r := range access.Dedupe(h.Resources) {
		out = append(out, Entry{"hist/resource/" + HashedName(r), k})
	}
	return out
}

func GetHistory(ctx context.Context, s logical.Storage, id string) (*HistoryRecord, error) {
	entry, err := s.Get(ctx, HistoryStoragePrefix+id)
	if err != nil || entry == nil {
		return nil, err
	}
	h := &HistoryRecord{}
	if err := entry.DecodeJSON(h); err != nil {
		return nil, fmt.Errorf("decoding history %q: %w", id, err)
	}
	return h, nil
}

// PutHistory keeps g's history as it ends (ending: how), with its index entries (in idx)
// written first.
func PutHistory(ctx context.Context, s logical.Storage, idx *Indexes, g *access.Grant, ending string, now time.Time) error {
	if ending == EndedRevoked && !now.Before(g.ExpiresAt.Add(-2*time.Second)) {
		ending = EndedExpired // Vault revokes an expired lease the same way
	}
	h := &HistoryRecord{
		GrantID: g.ID, Role: g.Role, Requester: g.RequesterName(), RequesterKind: g.RequesterKindOrStated(), Resources: g.Resources,
		Permission: g.Permission, IssuedAt: g.IssuedAt, EndedAt: now, Ended: ending, RequestID: g.RequestID,
		BreakGlass: g.BreakGlass, Justification: g.Justification, AutoApprovedBy: g.AutoApprovedBy,
		Bundle: g.Bundle, Parts: g.Parts,
	}
	if g.RequesterEntity != nil {
		h.RequesterEntity = g.RequesterEntity.EntityID
	}
	if g.RequestedBy != nil {
		h.RequestedBy = g.RequestedBy.Person()
	}
	for _, a := range g.Approvals {
		h.Approvers = append(h.Approvers, a.Approver.Person())
	}
	if err := idx.Apply(ctx, s, HistoryEntries(h), true); err != nil {
		return err
	}
	entry, err := logical.StorageEntryJSON(HistoryStoragePrefix+h.GrantID, h)
	if err != nil {
		return err
	}
	return s.Put(ctx, entry)
}
