// Package netmeshtest runs real netmesh nodes inside a test: clusters joined
// over loopback by bootstrap addresses, with no DHT and no mDNS, cleaned up by
// t.Cleanup.
package netmeshtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/netmesh"
)

// DefaultHeartbeat is the heartbeat interval of test nodes: short, so that
// liveness tests finish quickly.
const DefaultHeartbeat = 200 * time.Millisecond

type options struct {
	token     string
	heartbeat time.Duration
	edit      []func(i int, c *netmesh.Config)
	log       *slog.Logger
}

// Option adjusts a cluster.
type Option func(*options)

// WithToken makes the nodes use token instead of a fresh one.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithHeartbeat sets the heartbeat interval.
func WithHeartbeat(d time.Duration) Option { return func(o *options) { o.heartbeat = d } }

// WithConfig edits the configuration of node i before it starts.
func WithConfig(f func(i int, c *netmesh.Config)) Option {
	return func(o *options) { o.edit = append(o.edit, f) }
}

// WithLogger sends the nodes' logs to l instead of t.Log.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Config returns the configuration Cluster gives a node: listening on
// 127.0.0.1 only, no DHT, no mDNS, its own data dir.
func Config(t testing.TB, token string, name string) netmesh.Config {
	return netmesh.Config{
		Token:             token,
		DataDir:           t.TempDir(),
		Name:              name,
		ListenAddrs:       []string{"/ip4/127.0.0.1/tcp/0"},
		DisableDHT:        true,
		MDNS:              false,
		AppVersion:        "test",
		HeartbeatInterval: DefaultHeartbeat,
	}
}

// Cluster starts n nodes; nodes 1..n-1 bootstrap from node 0. It returns once
// every node is up (not yet once they see each other: see WaitConverged).
func Cluster(t testing.TB, n int, opts ...Option) []*netmesh.Node {
	t.Helper()
	o := options{heartbeat: DefaultHeartbeat}
	for _, f := range opts {
		f(&o)
	}
	if o.token == "" {
		tok, err := netmesh.NewToken()
		if err != nil {
			t.Fatalf("new token: %v", err)
		}
		o.token = tok
	}
	nodes := make([]*netmesh.Node, 0, n)
	var bootstrap []string
	for i := range n {
		cfg := Config(t, o.token, fmt.Sprintf("node%d", i))
		cfg.HeartbeatInterval = o.heartbeat
		cfg.Bootstrap = bootstrap
		for _, e := range o.edit {
			e(i, &cfg)
		}
		nd := Start(t, cfg, o.log)
		if i == 0 {
			bootstrap = nd.Addrs()
		}
		nodes = append(nodes, nd)
	}
	return nodes
}

// Start runs one node until the test ends and waits until it is up.
func Start(t testing.TB, cfg netmesh.Config, log *slog.Logger) *netmesh.Node {
	t.Helper()
	if log == nil {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	nd, err := netmesh.New(cfg, log.With("node", cfg.Name))
	if err != nil {
		t.Fatalf("new node %s: %v", cfg.Name, err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- nd.Run(context.Background()) }()
	t.Cleanup(func() {
		if err := nd.Close(); err != nil {
			t.Errorf("close %s: %v", cfg.Name, err)
		}
		if err := <-runErr; err != nil {
			t.Errorf("run %s: %v", cfg.Name, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := nd.Up(ctx); err != nil {
		t.Fatalf("node %s not up: %v", cfg.Name, err)
	}
	return nd
}

// WaitConverged waits until every node sees every other one online, with the
// name it announces.
func WaitConverged(t testing.TB, nodes []*netmesh.Node, timeout time.Duration) {
	t.Helper()
	WaitFor(t, timeout, func() bool {
		for _, a := range nodes {
			for _, b := range nodes {
				if a == b {
					continue
				}
				p, ok := a.Peer(b.ID())
				if !ok || !p.Online || p.Name != b.Info().Name {
					return false
				}
			}
		}
		return true
	}, "nodes did not all see each other online", func() string { return Views(nodes) })
}

// Views describes what each node sees, for failure messages.
func Views(nodes []*netmesh.Node) string {
	var b strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&b, "\n%s (%s) sees:", n.Info().Name, short(n.ID()))
		for _, p := range n.Peers() {
			fmt.Fprintf(&b, " %q(%s online=%v seen %v ago)", p.Name, short(p.PeerID), p.Online, time.Since(p.LastSeen).Round(time.Millisecond))
		}
	}
	return b.String()
}

func short(id string) string {
	if len(id) > 6 {
		return id[len(id)-6:]
	}
	return id
}

// WaitFor polls cond until it holds or timeout passes, then fails the test
// with msg and whatever the optional detail functions say.
func WaitFor(t testing.TB, timeout time.Duration, cond func() bool, msg string, detail ...func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			for _, d := range detail {
				msg += d()
			}
			t.Fatalf("after %v: %s", timeout, msg)
		}
		<-tick.C
	}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// EchoServer serves TCP on 127.0.0.1 until the test ends: every connection
// gets back what it sends, and a half-close (CloseWrite) from the client is
// answered with one once everything has been echoed. It returns the address.
func EchoServer(t testing.TB) string {
	t.Helper()
	return Serve(t, func(c net.Conn) {
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
}

// Serve runs handle for every connection to a new TCP listener on 127.0.0.1
// until the test ends, closing each connection after handle returns. It
// returns the listener's address.
func Serve(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c)
				c.Close()
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}
