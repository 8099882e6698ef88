package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// idp is a company identity provider as Vault's OIDC/JWT auth method sees it: a key that
// signs ID tokens whose "groups" claim says which IdP groups a person is in. Vault's jwt
// auth method (the one behind OIDC logins) checks the signature with the public key and
// keeps external identity groups in step with the claim at every login, as it does for an
// OIDC provider; no provider has to run for that.
type idp struct {
	mount, accessor string
	signer          jose.Signer
}

const idpIssuer = "https://idp.example.test"

func newIdP(t *testing.T, e *env, mount string) *idp {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(t.TempDir(), "idp.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	e.root(t, "auth", "enable", "-path="+mount, "jwt")
	e.root(t, "write", "auth/"+mount+"/config", "jwt_validation_pubkeys=@"+pemFile, "bound_issuer="+idpIssuer)
	e.root(t, "write", "auth/"+mount+"/role/people", "role_type=jwt", "user_claim=sub", "groups_claim=groups",
		"bound_audiences=vault", "token_policies=flows-requester,flows-approver", "token_ttl=10m")
	auths := e.jsonOut(t, "", "read", "sys/auth")["data"].(map[string]interface{})
	accessor, _ := auths[mount+"/"].(map[string]interface{})["accessor"].(string)
	if accessor == "" {
		t.Fatalf("no accessor for auth mount %s: %v", mount, auths)
	}
	return &idp{mount: mount, accessor: accessor, signer: signer}
}

// externalGroup makes an identity group of type external that the IdP group idpGroup
// fills.
func (p *idp) externalGroup(t *testing.T, e *env, name, idpGroup string) {
	t.Helper()
	g := e.jsonOut(t, "", "write", "identity/group", "name="+name, "type=external")
	id, _ := g["data"].(map[string]interface{})["id"].(string)
	if id == "" {
		t.Fatalf("external group %s: %v", name, g)
	}
	e.root(t, "write", "identity/group-alias", "name="+idpGroup, "canonical_id="+id, "mount_accessor="+p.accessor)
}

// login signs an ID token for sub with the given IdP groups and logs in with it; it
// returns the Vault token and the person's entity ID.
func (p *idp) login(t *testing.T, e *env, sub string, groups ...string) (token, entityID string) {
	t.Helper()
	now := time.Now()
	claims := jwt.Claims{Issuer: idpIssuer, Subject: sub, Audience: jwt.Audience{"vault"},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute))}
	signed, err := jwt.Signed(p.signer).Claims(claims).Claims(map[string]interface{}{"groups": append([]string{}, groups...)}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	v := e.jsonOut(t, "", "write", "auth/"+p.mount+"/login", "role=people", "jwt="+signed)
	auth, _ := v["auth"].(map[string]interface{})
	token, _ = auth["client_token"].(string)
	entityID, _ = auth["entity_id"].(string)
	if token == "" || entityID == "" {
		t.Fatalf("IdP login of %s: %s", sub, jsonString(t, v))
	}
	return token, entityID
}

// The owners named by a secret's owner tag can be an external group that the company's
// IdP fills: its members approve, others cannot, and when the IdP drops a person from the
// group (seen by Vault at their next login) their approval stops counting, even with the
// token they had before.
func TestAccessFlowIdPGroupApproves(t *testing.T) {
	t.Parallel()
	f := flowsEnv(t)
	e := f.e
	role := uniqueName(t)
	p := newIdP(t, e, "idp-"+role)
	owners := "idp-db-owners-" + role
	p.externalGroup(t, e, owners, "db-owners")

	e.root(t, "kv", "put", "kv/"+role+"/db", "password=idp-secret")
	e.root(t, "kv", "metadata", "put", "-custom-metadata=owner="+owners, "kv/"+role+"/db")
	f.role(t, role, "resources=kv/"+role+"/db", "approval=required", "approvers=owner", "ttl=5m")

	frank, frankEntity := p.login(t, e, "frank@example.test", "db-owners", "engineering")
	gina, _ := p.login(t, e, "gina@example.test", "engineering")
	if !strings.Contains(jsonString(t, e.jsonOut(t, "", "read", "identity/group/name/"+owners)), frankEntity) {
		t.Fatalf("Vault did not put frank in %s from his ID token", owners)
	}

	req := f.request(t, role)
	id := req["request_id"].(string)
	if got := jsonString(t, req["approvers"]); got != `["group:`+owners+`"]` {
		t.Fatalf("approvers from the owner tag: %s", got)
	}
	f.refusedToken(t, "gina", gina, 403, "is not an approver", "write", "-f", flowsMount+"/requests/"+id+"/approve")
	canApprove := e.jsonOut(t, frank, "read", flowsMount+"/requests", "can_approve=true")
	if !strings.Contains(jsonString(t, canApprove), id) {
		t.Fatalf("can_approve for frank lacks %s: %s", id, jsonString(t, canApprove))
	}
	v := e.jsonOut(t, frank, "write", flowsMount+"/requests/"+id+"/approve", "reason=IdP group db-owners")
	if data, _ := v["data"].(map[string]interface{}); data["status"] != "approved" {
		t.Fatalf("after frank: %s", jsonString(t, v))
	}
	g := f.pickUp(t, id)
	if got := strings.TrimSpace(e.s.MustCLI(t, e.mustLogin(t, g), "kv", "get", "-field=password", "kv/"+role+"/db")); got != "idp-secret" {
		t.Fatalf("the grant's user read %q", got)
	}
	e.root(t, "lease", "revoke", g.LeaseID)

	// The IdP drops frank from db-owners; his next login tells Vault. His old token is
	// still valid, but the plugin asks Vault for his groups at each call.
	p.login(t, e, "frank@example.test", "engineering")
	if strings.Contains(jsonString(t, e.jsonOut(t, "", "read", "identity/group/name/"+owners)), frankEntity) {
		t.Fatalf("Vault kept frank in %s after a login without the group", owners)
	}
	id = f.request(t, role)["request_id"].(string)
	f.refusedToken(t, "frank", frank, 403, "is not an approver", "write", "-f", flowsMount+"/requests/"+id+"/approve")
	if s := f.status(t, id); s != "pending" {
		t.Fatalf("status after frank left the group: %s", s)
	}
	f.as(t, "alice", "write", "-f", flowsMount+"/requests/"+id+"/cancel")
}
