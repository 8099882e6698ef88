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
