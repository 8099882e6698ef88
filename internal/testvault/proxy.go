package testvault

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy is a TCP proxy on a loopback port. Each connection goes to the first of its
// targets that accepts one, so it stands in for the load balancer in front of a Vault
// cluster (a killed node refuses, the next one is used). Down cuts every path through it
// without stopping Vault, which is how a test makes "the Vault API is unreachable" for a
// plugin whose vault_addr is the proxy.
type Proxy struct {
	Addr string // host:port the proxy listens on; the same after Down and Up

	mu      sync.Mutex
	targets []string
	ln      net.Listener
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// StartProxy listens on a free loopback port and forwards to targets (host:port), tried
// in order for each new connection.
func StartProxy(targets ...string) (*Proxy, error) {
	if len(targets) == 0 {
		return nil, errors.New("testvault: a proxy needs at least one target")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: ln.Addr().String(), targets: targets, conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	return p, nil
}

// URL returns the proxy's address as a VAULT_ADDR value.
func (p *Proxy) URL() string { return "http://" + p.Addr }

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by Down or Close
			}
			go p.forward(c)
		}
	}()
}

func (p *Proxy) forward(client net.Conn) {
	p.mu.Lock()
	targets := append([]string(nil), p.targets...)
	p.mu.Unlock()
	var backend net.Conn
	for _, t := range targets {
		c, err := net.DialTimeout("tcp", t, 2*time.Second)
		if err == nil {
			backend = c
			break
		}
	}
	if backend == nil {
		client.Close()
		return
	}
	if !p.track(client, backend) {
		client.Close()
		backend.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(backend, client)
	go pipe(client, backend)
	<-done // either side closing ends both
	client.Close()
	backend.Close()
	<-done
	p.untrack(client, backend)
}

// track registers a connection pair; false when the proxy went down meanwhile.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

// Down stops listening and closes every open connection: new connections are refused
// and kept-alive ones break, as when the Vault API is unreachable.
func (p *Proxy) Down() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	p.wg.Wait()
}

// Up listens again on the same address after Down.
func (p *Proxy) Up() error {
	p.mu.Lock()
	up := p.ln != nil
	p.mu.Unlock()
	if up {
		return nil
	}
	var ln net.Listener
	var err error
	// The port was ours a moment ago; retry briefly in case the kernel holds it.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", p.Addr); err == nil {
			p.serve(ln)
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// Close is Down for good.
func (p *Proxy) Close() { p.Down() }
