package testvault

import (
	"net/http"
	"time"

	"github.com/hashicorp/vault/api"
)

// RootClient returns a new API client for this server holding the root token, with its own
// connection pool: requests time out after timeout, and up to idleConns connections are
// kept open between requests (for callers that run that many requests at once). Server's
// Client is the same with the API's defaults.
func (s *Server) RootClient(timeout time.Duration, idleConns int) (*api.Client, error) {
	cfg := api.DefaultConfig()
	cfg.Address = s.URL()
	cfg.Timeout = timeout
	if t, ok := cfg.HttpClient.Transport.(*http.Transport); ok {
		t.MaxIdleConnsPerHost = idleConns
		t.MaxIdleConns = idleConns
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.SetToken(s.RootToken)
	c.ClearNamespace() // NewClient reads VAULT_NAMESPACE from this process's environment
	return c, nil
}
