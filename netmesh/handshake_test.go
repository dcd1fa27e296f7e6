package netmesh

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

func testHost(t *testing.T, token string) host.Host {
	t.Helper()
	tok, err := ParseToken(token)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := libp2pOptions(Config{}, tok)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(append(opts, libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// The token is bound into the Noise handshake: hosts with different tokens
// cannot complete a connection, hosts with the same token can.
func TestHandshakeNeedsSameToken(t *testing.T) {
	tokA, _ := NewToken()
	tokB, _ := NewToken()
	a, a2, b := testHost(t, tokA), testHost(t, tokA), testHost(t, tokB)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: a2.ID(), Addrs: a2.Addrs()}); err != nil {
		t.Fatalf("same token: %v", err)
	}
	err := b.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()})
	if err == nil {
		t.Fatal("a host with another token connected")
	}
	t.Logf("other token: %v", err)
	if len(a.Network().ConnsToPeer(b.ID())) != 0 {
		t.Error("the other side kept a connection")
	}
}
