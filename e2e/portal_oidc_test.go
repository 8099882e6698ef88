package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// oidcProvider is a small OpenID Connect provider on loopback, enough for Vault's OIDC
// auth method: discovery, JWKS, an authorize endpoint that signs the one person it knows
// in at once (no login page), and a token endpoint that checks the client, the code and
// its PKCE verifier and answers with a signed ID token.
type oidcProvider struct {
	srv          *httptest.Server
	clientID     string
	clientSecret string
	subject      string // who the provider signs in
	key          *rsa.PrivateKey
	signer       jose.Signer

	mu    sync.Mutex
	codes map[string]oidcGrant
	// authorized counts the sign-ins the authorize endpoint answered, tokens the codes
	// exchanged: the test checks that the browser went through both.
	authorized, tokens int
}

type oidcGrant struct {
	clientID, redirectURI, nonce, challenge string
}

func newOIDCProvider(t *testing.T, subject string) *oidcProvider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "portal-test"))
	if err != nil {
		t.Fatal(err)
	}
	p := &oidcProvider{clientID: "vault-portal", clientSecret: "portal-client-secret-" + randomHex(t, 8),
		subject: subject, key: key, signer: signer, codes: map[string]oidcGrant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("/jwks", p.jwks)
	mux.HandleFunc("/authorize", p.authorize)
	mux.HandleFunc("/token", p.token)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func (p *oidcProvider) issuer() string { return p.srv.URL }

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (p *oidcProvider) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]interface{}{
		"issuer":                                p.issuer(),
		"authorization_endpoint":                p.issuer() + "/authorize",
		"token_endpoint":                        p.issuer() + "/token",
		"jwks_uri":                              p.issuer() + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "email", "profile"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":      []string{"S256"},
	})
}

func (p *oidcProvider) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &p.key.PublicKey, KeyID: "portal-test", Algorithm: "RS256", Use: "sig"}}})
}

func (p *oidcProvider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	switch {
	case err != nil || redirect.Scheme == "":
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	case q.Get("client_id") != p.clientID, q.Get("response_type") != "code":
		http.Error(w, "unknown client or response type", http.StatusBadRequest)
		return
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		http.Error(w, "PKCE (S256) is required", http.StatusBadRequest)
		return
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		http.Error(w, "no randomness", http.StatusInternalServerError)
		return
	}
	code := hex.EncodeToString(b)
	p.mu.Lock()
	p.codes[code] = oidcGrant{clientID: p.clientID, redirectURI: redirect.String(), nonce: q.Get("nonce"), challenge: q.Get("code_challenge")}
	p.authorized++
	p.mu.Unlock()
	back := redirect.Query()
	back.Set("code", code)
	back.Set("state", q.Get("state"))
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (p *oidcProvider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != p.clientID || secret != p.clientSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	code := r.PostForm.Get("code")
	p.mu.Lock()
	g, found := p.codes[code]
	delete(p.codes, code) // a code is used once
	p.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	switch {
	case r.PostForm.Get("grant_type") != "authorization_code", !found:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		return
	case r.PostForm.Get("redirect_uri") != g.redirectURI:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "redirect_uri differs"})
		return
	case base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "PKCE verifier does not match"})
		return
	}
	now := time.Now()
	claims := jwt.Claims{Issuer: p.issuer(), Subject: p.subject, Audience: jwt.Audience{p.clientID},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute))}
	idToken, err := jwt.Signed(p.signer).Claims(claims).Claims(map[string]interface{}{
		"nonce": g.nonce, "email": p.subject + "@example.test", "name": p.subject,
	}).Serialize()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	p.mu.Lock()
	p.tokens++
	p.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]interface{}{
		"access_token": "at-" + code, "token_type": "Bearer", "expires_in": 300, "id_token": idToken,
	})
}

func (p *oidcProvider) counts() (authorized, tokens int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.authorized, p.tokens
}
