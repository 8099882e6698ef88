// The calls the backend makes through APIClient, each bounded by CallTimeout and retried
// once after a fresh AppRole login when Vault answers 403 (do, in client.go).

package vaultapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/vault/api"
)

func (c *APIClient) Mounts(ctx context.Context) (map[string]MountInfo, error) {
	var out map[string]MountInfo
	err := c.do(ctx, func(cl *api.Client) error {
		mounts, err := cl.Sys().ListMountsWithContext(ctx)
		if err != nil {
			return err
		}
		out = make(map[string]MountInfo, len(mounts))
		for path, m := range mounts {
			out[path] = MountInfo{Type: m.Type, Version: m.Options["version"]}
		}
		return nil
	})
	return out, err
}

func (c *APIClient) WritePolicy(ctx context.Context, name, rules string) error {
	return c.do(ctx, func(cl *api.Client) error {
		return cl.Sys().PutPolicyWithContext(ctx, name, rules)
	})
}

func (c *APIClient) DeletePolicy(ctx context.Context, name string) error {
	err := c.do(ctx, func(cl *api.Client) error {
		return cl.Sys().DeletePolicyWithContext(ctx, name)
	})
	if IsStatus(err, http.StatusNotFound) {
		return nil
	}
	return err
}

// UserPath is the userpass user name on mount.
func UserPath(mount, name string) string {
	return "auth/" + mount + "/users/" + url.PathEscape(name)
}

func (c *APIClient) WriteUser(ctx context.Context, mount, name string, u UserSpec) error {
	data := map[string]interface{}{
		"token_policies":          u.Policies,
		"token_no_default_policy": true,
		"token_type":              "service",
		"token_ttl":               int64(u.TTL.Seconds()),
		"token_max_ttl":           int64(u.MaxTTL.Seconds()),
	}
	if u.PasswordHash != "" {
		data["password_hash"] = u.PasswordHash
	} else {
		data["password"] = u.Password
	}
	if len(u.BoundCIDRs) > 0 {
		data["token_bound_cidrs"] = u.BoundCIDRs
	}
	return c.do(ctx, func(cl *api.Client) error {
		_, err := cl.Logical().WriteWithContext(ctx, UserPath(mount, name), data)
		return err
	})
}

func (c *APIClient) UpdateUserTTL(ctx context.Context, mount, name string, ttl, maxTTL time.Duration) error {
	data := map[string]interface{}{
		"token_ttl":     int64(ttl.Seconds()),
		"token_max_ttl": int64(maxTTL.Seconds()),
	}
	return c.do(ctx, func(cl *api.Client) error {
		_, err := cl.Logical().WriteWithContext(ctx, UserPath(mount, name), data)
		return err
	})
}

func (c *APIClient) DeleteUser(ctx context.Context, mount, name string) error {
	err := c.do(ctx, func(cl *api.Client) error {
		_, err := cl.Logical().DeleteWithContext(ctx, UserPath(mount, name))
		return err
	})
	if IsStatus(err, http.StatusNotFound) {
		return nil
	}
	return err
}

func (c *APIClient) ListUsers(ctx context.Context, mount string) ([]string, error) {
	keys, _, err := c.List(ctx, "auth/"+mount+"/users")
	return keys, err
}

func (c *APIClient) RevokeLoginTokens(ctx context.Context, mount, name string) error {
	return c.do(ctx, func(cl *api.Client) error {
		return cl.Sys().RevokePrefixWithContext(ctx, "auth/"+mount+"/login/"+url.PathEscape(name))
	})
}

// EntityNamePath is the identity entity called name.
func EntityNamePath(name string) string {
	return "identity/entity/name/" + url.PathEscape(name)
}

func (c *APIClient) WriteEntity(ctx context.Context, name string, metadata map[string]string) (string, error) {
	var id string
	err := c.do(ctx, func(cl *api.Client) error {
		s, err := cl.Logical().WriteWithContext(ctx, EntityNamePath(name), map[string]interface{}{"metadata": metadata})
		if err != nil {
			return err
		}
		if s != nil && s.Data != nil {
			id, _ = s.Data["id"].(string)
		}
		if id == "" {
			// An update of an existing entity answers 204: read its ID.
			s, err = cl.Logical().ReadWithContext(ctx, EntityNamePath(name))
			if err != nil {
				return err
			}
			if s != nil && s.Data != nil {
				id, _ = s.Data["id"].(string)
			}
		}
		if id == "" {
			return fmt.Errorf("vault returned no ID for entity %s", name)
		}
		return nil
	})
	return id, err
}

func (c *APIClient) WriteEntityAlias(ctx context.Context, name, canonicalID, mountAccessor string) error {
	return c.do(ctx, func(cl *api.Client) error {
		_, err := cl.Logical().WriteWithContext(ctx, "identity/entity-alias", map[string]interface{}{
			"name": name, "canonical_id": canonicalID, "mount_accessor": mountAccessor,
		})
		return err
	})
}

func (c *APIClient) DeleteEntity(ctx context.Context, name string) error {
	err := c.do(ctx, func(cl *api.Client) error {
		_, err := cl.Logical().DeleteWithContext(ctx, EntityNamePath(name))
		return err
	})
	if IsStatus(err, http.StatusNotFound) {
		return nil
	}
	return err
}

func (c *APIClient) DeleteByPath(ctx context.Context, path string) error {
	err := c.do(ctx, func(cl *api.Client) error {
		_, err := cl.Logical().DeleteWithContext(ctx, path)
		return err
	})
	if IsStatus(err, http.StatusNotFound) {
		return nil
	}
	return err
}

func (c *APIClient) AuthMountAccessor(ctx context.Context, path string) (string, error) {
	// sys/internal/ui/mounts answers for a mount the token may use any path of; the
	// management policy's auth/<userpass>/users/* is enough, where sys/auth needs more.
	data, err := c.Read(ctx, "sys/internal/ui/mounts/auth/"+path)
	if err != nil {
		return "", err
	}
	acc, _ := data["accessor"].(string)
	if acc == "" {
		return "", fmt.Errorf("no accessor for auth mount %s/", path)
	}
	return acc, nil
}

func (c *APIClient) LookupTokenAccessor(ctx context.Context, accessor string) (*TokenLifetime, error) {
	var out *TokenLifetime
	err := c.do(ctx, func(cl *api.Client) error {
		s, err := cl.Auth().Token().LookupAccessorWithContext(ctx, accessor)
		if err != nil {
			return err
		}
		if s == nil || s.Data == nil {
			return errors.New("token lookup returned nothing")
		}
		out = &TokenLifetime{}
		out.TTL, _ = s.TokenTTL()
		if v, _ := s.Data["expire_time"].(string); v != "" {
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				out.ExpireTime = t
			}
		}
		out.Period = jsonSeconds(s.Data["period"])
		out.ExplicitMaxTTL = jsonSeconds(s.Data["explicit_max_ttl"])
		if ct := jsonSeconds(s.Data["creation_time"]); ct > 0 {
			out.CreationTime = time.Unix(int64(ct/time.Second), 0)
		}
		out.Renewable, _ = s.Data["renewable"].(bool)
		out.Path, _ = s.Data["path"].(string)
		return nil
	})
	return out, err
}

// jsonSeconds reads a number of seconds from an API response (a json.Number or float).
func jsonSeconds(v interface{}) time.Duration {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return time.Duration(i) * time.Second
	case float64:
		return time.Duration(n) * time.Second
	case int64:
		return time.Duration(n) * time.Second
	case int:
		return time.Duration(n) * time.Second
	}
	return 0
}

func (c *APIClient) List(ctx context.Context, path string) ([]string, map[string]interface{}, error) {
	var keys []string
	var info map[string]interface{}
	err := c.do(ctx, func(cl *api.Client) error {
		s, err := cl.Logical().ListWithContext(ctx, path)
		if err != nil {
			return err
		}
		keys, info = nil, nil
		if s == nil || s.Data == nil {
			return nil
		}
		if raw, ok := s.Data["keys"].([]interface{}); ok {
			keys = make([]string, 0, len(raw))
			for _, k := range raw {
				if ks, ok := k.(string); ok {
					keys = append(keys, ks)
				}
			}
		}
		info, _ = s.Data["key_info"].(map[string]interface{})
		return nil
	})
	return keys, info, err
}

func (c *APIClient) Read(ctx context.Context, path string) (map[string]interface{}, error) {
	var data map[string]interface{}
	err := c.do(ctx, func(cl *api.Client) error {
		s, err := cl.Logical().ReadWithContext(ctx, path)
		if err != nil {
			return err
		}
		data = nil
		if s != nil {
			data = s.Data
		}
		return nil
	})
	return data, err
}

func (c *APIClient) CapabilitiesSelf(ctx context.Context, paths []string) (map[string][]string, error) {
	out := make(map[string][]string, len(paths))
	err := c.do(ctx, func(cl *api.Client) error {
		for _, p := range paths {
			caps, err := cl.Sys().CapabilitiesSelfWithContext(ctx, p)
			if err != nil {
				return err
			}
			out[p] = caps
		}
		return nil
	})
	return out, err
}

func (c *APIClient) Health(ctx context.Context) (*api.HealthResponse, error) {
	// sys/health needs no token; it answers even when login is broken.
	return c.client.Sys().HealthWithContext(ctx)
}
