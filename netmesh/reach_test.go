package netmesh_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/netmesh/netmeshtest"
)

// idOf returns the peer ID a node started with cfg will have, without
// starting it: the identity is kept in cfg.DataDir.
func idOf(t *testing.T, cfg netmesh.Config) string {
	t.Helper()
	n, err := netmesh.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	return n.ID()
}

// A tunnel dialed to a peer this node has no address of yet (the peer
// starts only after Dial began, and connects to this node) opens once the
// peer connects, and carries data.
func TestTunnelDialWaitsForPeer(t *testing.T) {
	netmeshtest.CheckLeaks(t)
	tok, err := netmesh.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	dialer := netmeshtest.Cluster(t, 1, netmeshtest.WithToken(tok))[0]
	cfg := netmeshtest.Config(t, tok, "late")
	cfg.Bootstrap = dialer.Addrs()
	lateID := idOf(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type result struct {
		tun *netmesh.Tunnel
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		tun, err := dialer.Dial(ctx, lateID, "echo")
		done <- result{tun, err}
	}()
	// Dial must still be waiting: the peer is not even running.
	select {
	case r := <-done:
		if r.tun != nil {
			r.tun.Close()
		}
		t.Fatalf("Dial returned before the peer was started: %v", r.err)
	case <-time.After(500 * time.Millisecond):
	}

	late := netmeshtest.Start(t, cfg, nil)
	if late.ID() != lateID {
		t.Fatalf("late node has id %s, want %s", late.ID(), lateID)
	}
	if err := late.Expose("echo", netmeshtest.EchoServer(t)); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("Dial of a peer that connected %v after it began: %v", time.Since(start).Round(time.Millisecond), r.err)
	}
	t.Cleanup(func() { r.tun.Close() })
	t.Logf("tunnel open %v after Dial began", time.Since(start).Round(time.Millisecond))

	c := connect(t, r.tun.Addr())
	defer c.Close()
	msg := "hello from before you were here"
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo %q, %v; want %q", buf, err, msg)
	}
}

// A tunnel dialed right after Up, to the peer the node bootstraps from,
// opens (the bench's case: the bootstrap connection may not exist yet).
func TestTunnelDialRightAfterUp(t *testing.T) {
	netmeshtest.CheckLeaks(t)
	tok, err := netmesh.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	exposer := netmeshtest.Cluster(t, 1, netmeshtest.WithToken(tok))[0]
	if err := exposer.Expose("echo", netmeshtest.EchoServer(t)); err != nil {
		t.Fatal(err)
	}
	cfg := netmeshtest.Config(t, tok, "dialer")
	cfg.Bootstrap = exposer.Addrs()
	dialer := netmeshtest.Start(t, cfg, nil)
	tun := dialTunnel(t, dialer, exposer.ID(), "echo")

	c := connect(t, tun.Addr())
	defer c.Close()
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q, %v", buf, err)
	}
}

// A tunnel to a peer that never shows up fails when the caller's deadline
// passes, promptly, saying the peer could not be reached and why.
func TestTunnelDialAbsentPeerFailsAtDeadline(t *testing.T) {
	netmeshtest.CheckLeaks(t)
	tok, err := netmesh.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	n := netmeshtest.Cluster(t, 1, netmeshtest.WithToken(tok))[0]
	absent := idOf(t, netmeshtest.Config(t, tok, "absent"))

	const deadline = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	tun, err := n.Dial(ctx, absent, "echo")
	took := time.Since(start)
	if err == nil {
		tun.Close()
		t.Fatal("Dial of a peer that never started opened a tunnel")
	}
	t.Logf("after %v: %v", took.Round(time.Millisecond), err)
	if took < deadline-100*time.Millisecond {
		t.Errorf("Dial gave up after %v, before the %v deadline", took, deadline)
	}
	if took > deadline+time.Second {
		t.Errorf("Dial returned %v after a %v deadline", took, deadline)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %q does not wrap context.DeadlineExceeded", err)
	}
	for _, want := range []string{absent, "could not be reached within", "no addresses"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	// Cancellation ends the wait as promptly.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start = time.Now()
	if tun, err := n.Dial(ctx, absent, "echo"); err == nil {
		tun.Close()
		t.Fatal("Dial of a peer that never started opened a tunnel")
	} else if !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Errorf("cancelled Dial: after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
}

// A tunnel to a peer that was reached and has gone fails at once, well
// within the caller's deadline: its addresses answer no, and a request
// that asked for it must fail over now, not wait for it.
func TestTunnelDialGonePeerFailsAtOnce(t *testing.T) {
	netmeshtest.CheckLeaks(t)
	tok, err := netmesh.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	nodes := netmeshtest.Cluster(t, 2, netmeshtest.WithToken(tok))
	dialer, gone := nodes[0], nodes[1]
	netmeshtest.WaitConverged(t, nodes, 20*time.Second)
	id := gone.ID()
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	netmeshtest.WaitFor(t, 10*time.Second, func() bool {
		for _, p := range dialer.Peers() {
			if p.PeerID == id && p.Conn != netmesh.ConnNone {
				return false
			}
		}
		return true
	}, "the closed peer's connection to go")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	tun, err := dialer.Dial(ctx, id, "echo")
	took := time.Since(start)
	if err == nil {
		tun.Close()
		t.Fatal("Dial of a closed peer opened a tunnel")
	}
	if took > 5*time.Second || !strings.Contains(err.Error(), "none answered") {
		t.Errorf("Dial of a closed peer: after %v: %v", took.Round(time.Millisecond), err)
	}
	t.Logf("failed after %v: %v", took.Round(time.Millisecond), err)
}
