package netmesh_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/netmesh/netmeshtest"
)

func dialTunnel(t *testing.T, n *netmesh.Node, peerID, service string) *netmesh.Tunnel {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tun, err := n.Dial(ctx, peerID, service)
	if err != nil {
		t.Fatalf("dial %s: %v", service, err)
	}
	t.Cleanup(func() { tun.Close() })
	return tun
}

func connect(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c.(*net.TCPConn)
}

func TestServiceReachableFromOthers(t *testing.T) {
	netmeshtest.CheckLeaks(t)
	nodes := netmeshtest.Cluster(t, 3)
	netmeshtest.WaitConverged(t, nodes, 10*time.Second)
	server := nodes[0]

	if err := server.Expose("echo", netmeshtest.EchoServer(t)); err != nil {
		t.Fatal(err)
	}
	// A service that answers only once the request is complete (EOF), like
	// an HTTP/1.0 server: a tunnel that loses the half-close gets no answer.
	upper := netmeshtest.Serve(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		c.Write(bytes.ToUpper(b))
	})
	if err := server.Expose("upper", upper); err != nil {
		t.Fatal(err)
	}
	// A service that speaks first and hangs up.
	if err := server.Expose("banner", netmeshtest.Serve(t, func(c net.Conn) { io.WriteString(c, "hello and bye") })); err != nil {
		t.Fatal(err)
	}

	netmeshtest.WaitFor(t, 5*time.Second, func() bool {
		p, ok := nodes[1].Peer(server.ID())
		_, echo := p.Services["echo"]
		_, up := p.Services["upper"]
		return ok && echo && up
	}, "exposed services not announced")

	for _, client := range nodes[1:] {
		t.Run(client.Info().Name, func(t *testing.T) {
			t.Run("interactive", func(t *testing.T) {
				tun := dialTunnel(t, client, server.ID(), "echo")
				c := connect(t, tun.Addr())
				defer c.Close()
				buf := make([]byte, 64)
				for i := range 20 {
					msg := fmt.Sprintf("ping %d", i)
					if _, err := io.WriteString(c, msg); err != nil {
						t.Fatal(err)
					}
					if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil {
						t.Fatal(err)
					}
					if string(buf[:len(msg)]) != msg {
						t.Fatalf("echo %q, want %q", buf[:len(msg)], msg)
					}
				}
			})
			t.Run("bulk with half-close", func(t *testing.T) {
				tun := dialTunnel(t, client, server.ID(), "echo")
				c := connect(t, tun.Addr())
				defer c.Close()
				want := make([]byte, 4<<20)
				rand.Read(want)
				errc := make(chan error, 1)
				go func() {
					_, err := c.Write(want)
					if err == nil {
						err = c.CloseWrite()
					}
					errc <- err
				}()
				got, err := io.ReadAll(c)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if err := <-errc; err != nil {
					t.Fatalf("write: %v", err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("echoed %d bytes, want the %d sent", len(got), len(want))
				}
				st := tun.Stats()
				if st.BytesSent != uint64(len(want)) || st.BytesReceived != uint64(len(want)) || st.Streams != 1 {
					t.Errorf("tunnel stats %+v", st)
				}
			})
			t.Run("answer after EOF", func(t *testing.T) {
				tun := dialTunnel(t, client, server.ID(), "upper")
				c := connect(t, tun.Addr())
				defer c.Close()
				io.WriteString(c, "llama says hi")
				c.CloseWrite()
				got, err := io.ReadAll(c)
				if err != nil || string(got) != "LLAMA SAYS HI" {
					t.Fatalf("got %q, %v", got, err)
				}
			})
			t.Run("server speaks and hangs up", func(t *testing.T) {
				tun := dialTunnel(t, client, server.ID(), "banner")
				c := connect(t, tun.Addr())
				defer c.Close()
				got, err := io.ReadAll(c)
				if err != nil || string(got) != "hello and bye" {
					t.Fatalf("got %q, %v", got, err)
				}
			})
			t.Run("unknown service", func(t *testing.T) {
				tun := dialTunnel(t, client, server.ID(), "nope")
				c := connect(t, tun.Addr())
				defer c.Close()
				io.WriteString(c, "anyone?")
				got, _ := io.ReadAll(c)
				if len(got) != 0 {
					t.Fatalf("unknown service answered %q", got)
				}
			})
			t.Run("closed tunnel stops listening", func(t *testing.T) {
				tun := dialTunnel(t, client, server.ID(), "echo")
				tun.Close()
				if c, err := net.DialTimeout("tcp", tun.Addr(), time.Second); err == nil {
					c.Close()
					t.Fatal("closed tunnel still accepts connections")
				}
			})
		})
	}

	// The last pipes wind down just after their clients saw EOF.
	netmeshtest.WaitFor(t, 5*time.Second, func() bool { return server.TunnelStats().ActiveStreams == 0 }, "streams left open")
	if st := server.TunnelStats(); st.BytesSent < 8<<20 || st.BytesReceived < 8<<20 || st.Streams < 8 {
		t.Errorf("server tunnel stats %+v", st)
	}

	server.Unexpose("echo")
	tun := dialTunnel(t, nodes[1], server.ID(), "echo")
	c := connect(t, tun.Addr())
	defer c.Close()
	io.WriteString(c, "still there?")
	if got, _ := io.ReadAll(c); len(got) != 0 {
		t.Errorf("unexposed service answered %q", got)
	}
}

func TestExposeValidates(t *testing.T) {
	tok, _ := netmesh.NewToken()
	n, err := netmesh.New(netmeshtest.Config(t, tok, "x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	tests := []struct{ name, addr, want string }{
		{"", "127.0.0.1:80", "service name"},
		{"Bad Name", "127.0.0.1:80", "service name"},
		{"ok", "10.0.0.1:80", "not a loopback"},
		{"ok", "0.0.0.0:80", "not a loopback"},
		{"ok", "127.0.0.1", "address"},
		{"ok", "127.0.0.1:0", "no port"},
	}
	for _, tt := range tests {
		if err := n.Expose(tt.name, tt.addr); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Expose(%q, %q) = %v, want an error about %q", tt.name, tt.addr, err, tt.want)
		}
	}
	for _, ok := range []string{"127.0.0.1:8080", "[::1]:8080", "localhost:8080"} {
		if err := n.Expose("svc", ok); err != nil {
			t.Errorf("Expose(svc, %q) = %v", ok, err)
		}
	}
}

func TestForeignTokenIsRejected(t *testing.T) {
	netmeshtest.CheckLeaks(t)
	nodes := netmeshtest.Cluster(t, 2)
	netmeshtest.WaitConverged(t, nodes, 10*time.Second)
	if err := nodes[0].Expose("echo", netmeshtest.EchoServer(t)); err != nil {
		t.Fatal(err)
	}

	other, _ := netmesh.NewToken()
	foreign := netmeshtest.Cluster(t, 1, netmeshtest.WithToken(other),
		netmeshtest.WithConfig(func(_ int, c *netmesh.Config) {
			c.Name = "stranger"
			c.Bootstrap = nodes[0].Addrs()
		}))[0]

	// No handshake completes, so no service stream can be opened.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if tun, err := foreign.Dial(ctx, nodes[0].ID(), "echo"); err == nil {
		tun.Close()
		t.Fatal("a node with another token opened a tunnel")
	} else {
		t.Logf("dial with another token: %v", err)
	}

	// Give gossip several heartbeats' time, then check nobody saw anybody.
	time.Sleep(8 * netmeshtest.DefaultHeartbeat)
	if ps := foreign.Peers(); len(ps) != 0 {
		t.Errorf("foreign node sees %d peers", len(ps))
	}
	for i, n := range nodes {
		for _, p := range n.Peers() {
			if p.PeerID == foreign.ID() {
				t.Errorf("node%d sees the foreign node", i)
			}
		}
	}
}

// Closing a tunnel returns even while the service still holds a connection
// open that the client has already closed (a half-closed stream).
func TestTunnelCloseWithServiceHoldingOpen(t *testing.T) {
	nodes := netmeshtest.Cluster(t, 2)
	netmeshtest.WaitConverged(t, nodes, 10*time.Second)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			held <- c // accepted, never read, written or closed
		}
	}()
	if err := nodes[0].Expose("mute", ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tun, err := nodes[1].Dial(ctx, nodes[0].ID(), "mute")
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", tun.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello"))
	c.Close()
	select {
	case sc := <-held:
		defer sc.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the service never got the connection")
	}
	done := make(chan struct{})
	go func() { tun.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Tunnel.Close still blocked after 10s")
	}
}
