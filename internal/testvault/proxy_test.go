package testvault

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestProxyForwardsToFirstLiveTargetAndGoesDown(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "vault")
	}))
	defer backend.Close()
	// A port nothing listens on: the first target refuses, as a killed node does.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()

	p, err := StartProxy(dead, strings.TrimPrefix(backend.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	client := &http.Client{Transport: &http.Transport{}} // keep-alive, as the plugin's client
	get := func() (string, error) {
		resp, err := client.Get(p.URL())
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if body, err := get(); err != nil || body != "vault" {
		t.Fatalf("through the proxy: %q, %v", body, err)
	}
	p.Down()
	if body, err := get(); err == nil {
		t.Fatalf("proxy down, yet a request got through: %q", body)
	}
	if err := p.Up(); err != nil {
		t.Fatal(err)
	}
	if body, err := get(); err != nil || body != "vault" {
		t.Fatalf("after Up: %q, %v", body, err)
	}
}
