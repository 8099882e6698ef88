package grants

import (
	"context"
	"fmt"
	"sync"

	"github.com/apono-io/vault-plugin-apono/backend/config"
	"github.com/apono-io/vault-plugin-apono/backend/vaultapi"
	"github.com/hashicorp/vault/sdk/helper/base62"
	"golang.org/x/crypto/bcrypt"
)

// Cheaper grants where the server allows it. Vault 1.17+ and OpenBao 2.6+ let a userpass
// user be written with password_hash (bcrypt) instead of password, and then Vault does no
// bcrypt of its own for the grant. The slow hash protects guessable passwords; a grant's
// password is 32 random base62 characters (about 190 bits) by default, which no number of
// guesses finds, so the plugin hashes it at a low cost (password_hash_cost, default 5, the
// least OpenBao accepts) and every grant saves Vault about 80 ms of CPU (and each login
// with it). Support is found once per Vault client (a probe user written and deleted) and
// shown by apono/health; where it is missing the plugin sends the password as before.

// passwordHashSupport remembers, per Vault client, whether userpass takes password_hash.
type passwordHashSupport struct {
	mu        sync.Mutex
	client    vaultapi.Client
	known     bool
	supported bool
}

// SupportsPasswordHash reports whether the server's userpass takes password_hash, by
// writing and deleting a probe user once per client. An error leaves it unknown (asked
// again next time) and the grant sends its password.
func (g *Grants) SupportsPasswordHash(ctx context.Context, client vaultapi.Client, mount string) bool {
	p := &g.pwHash
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == client && p.known {
		return p.supported
	}
	secret, err := base62.Random(32)
	if err != nil {
		return false
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), config.MinPasswordHashCost)
	if err != nil {
		return false
	}
	// Named like a grant, so that the sweeper removes it should this process die here.
	name := g.ObjectName(ProbeID)
	werr := client.WriteUser(ctx, mount, name, vaultapi.UserSpec{PasswordHash: string(hash), Policies: []string{}})
	if werr == nil {
		if err := client.DeleteUser(ctx, mount, name); err != nil {
			g.logger().Warn("deleting the password_hash probe user; the sweeper removes it", "username", name, "error", err)
		}
	}
	switch {
	case werr == nil:
		p.supported = true
	case vaultapi.IsStatus(werr, 400):
		p.supported = false // "missing password": this userpass predates password_hash
	default:
		g.logger().Debug("probing userpass for password_hash failed; sending the password", "error", vaultapi.Redact(werr))
		return false
	}
	p.client, p.known = client, true
	g.logger().Info("userpass password_hash support", "supported", p.supported)
	return p.supported
}

// hashedUser puts the grant's password into u as a bcrypt hash when the server and the
// config allow it.
func (g *Grants) hashedUser(ctx context.Context, client vaultapi.Client, cfg *config.Config, u *vaultapi.UserSpec) error {
	cost := cfg.HashCost()
	if cost == 0 || !g.SupportsPasswordHash(ctx, client, cfg.UserpassMount) {
		return nil
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), cost)
	if err != nil {
		return fmt.Errorf("hashing the grant's password: %w", err)
	}
	u.PasswordHash, u.Password = string(hash), ""
	return nil
}
