package sweep

import (
	"context"
	"fmt"

	"github.com/apono-io/vault-plugin-apono/backend/grants"
	"github.com/hashicorp/vault/sdk/logical"
)

// EndSSHSigning takes the SSH sign rules out of the policy of every grant whose signing
// deadline has come (grants.BoundedPolicy sets it so that no certificate outlives its
// grant). It reads Vault only when a deadline is stored.
func (w *Sweeper) EndSSHSigning(ctx context.Context, s logical.Storage) error {
	ids, err := s.List(ctx, grants.SignDeadlinePrefix)
	if err != nil || len(ids) == 0 {
		return err
	}
	client, err := w.Client(ctx, s)
	if err != nil {
		return fmt.Errorf("ending SSH signing: %w", err)
	}
	n, err := w.Grants.EndDueSigning(ctx, s, client, w.clock())
	if n > 0 {
		w.Logger().Info("SSH signing ended for grants near their end", "grants", n)
	}
	return err
}
