package backend

import (
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/crypto/bcrypt"
)

// Where userpass takes password_hash, a grant's user gets a bcrypt hash of the password
// the grant returns, at password_hash_cost; elsewhere, or with the cost 0, the password.
func TestGrantPasswordIsHashedWhereUserpassTakesIt(t *testing.T) {
	for _, tc := range []struct {
		name      string
		supported bool
		cost      interface{}
		wantHash  bool
	}{
		{"userpass before password_hash", false, nil, false},
		{"password_hash, default cost", true, nil, true},
		{"password_hash, cost 8", true, 8, true},
		{"password_hash, turned off", true, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.vault.PasswordHash = tc.supported
			e.configure(t)
			if tc.cost != nil {
				e.mustOK(t, logical.UpdateOperation, "config", map[string]interface{}{"password_hash_cost": tc.cost})
			}
			e.mustOK(t, logical.CreateOperation, "roles/app", map[string]interface{}{"resources": "kv/app/db"})
			resp := e.mustOK(t, logical.UpdateOperation, "grants/app", nil)
			u, ok := e.vault.User("userpass", resp.Data["username"].(string))
			if !ok {
				t.Fatal("no user")
			}
			password := resp.Data["password"].(string)
			if !tc.wantHash {
				if u.PasswordHash != "" || u.Password != password {
					t.Fatalf("user %+v, want the password itself", u)
				}
				return
			}
			if u.Password != "" || bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
				t.Fatalf("user %+v: the hash is not of the returned password", u)
			}
			cost, _ := bcrypt.Cost([]byte(u.PasswordHash))
			if want := 5; tc.cost != nil {
				want = tc.cost.(int)
				if cost != want {
					t.Fatalf("cost %d, want %d", cost, want)
				}
			} else if cost != want {
				t.Fatalf("cost %d, want the default %d", cost, want)
			}
			if users := e.vault.UserNames(); len(users) != 1 {
				t.Fatalf("the probe user was left: %v", users)
			}
		})
	}
	e := newTestEnv(t)
	e.configure(t)
	e.mustBadRequest(t, logical.UpdateOperation, "config", map[string]interface{}{"password_hash_cost": 4}, "between 5 and 12")
}
