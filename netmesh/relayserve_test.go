package netmesh

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	ma "github.com/multiformats/go-multiaddr"
)

// dialedConn is a connection's direction and remote address, all that
// relayServer looks at.
type dialedConn struct {
	network.Conn
	dir    network.Direction
	remote string
}

func (c dialedConn) Stat() network.ConnStats {
	return network.ConnStats{Stats: network.Stats{Direction: c.dir}}
}

func (c dialedConn) RemoteMultiaddr() ma.Multiaddr { return ma.StringCast(c.remote) }

// The relay serves while AutoNAT says public, and while it does not know
// yet once a member has dialed in from a public address; not after AutoNAT
// says private, nor for connections that prove nothing.
func TestRelayServerServesWhenDialedFromOutside(t *testing.T) {
	h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	s := newRelayServer(h, slog.New(slog.DiscardHandler))
	defer s.close()
	hop := func() bool { return slices.Contains(h.Mux().Protocols(), protocol.ID(proto.ProtoIDv2Hop)) }
	check := func(step string, want bool) {
		t.Helper()
		if s.serving() != want || hop() != want {
			t.Errorf("%s: serving %v, hop protocol %v; want %v", step, s.serving(), hop(), want)
		}
	}

	check("at start", false)
	s.reachability(network.ReachabilityUnknown)
	check("unknown", false)
	for _, c := range []dialedConn{
		{dir: network.DirOutbound, remote: "/ip4/11.77.0.2/tcp/4101"},
		{dir: network.DirInbound, remote: "/ip4/192.168.1.20/tcp/4101"},
		{dir: network.DirInbound, remote: "/ip4/11.77.0.10/tcp/4101/p2p/12D3KooWNqkrQUYUaSQiUHM6vomqTMXxzdWuBeCmzSeNJqJEYDxs/p2p-circuit"},
	} {
		if dialedFromOutside(c) {
			t.Errorf("%s from %s taken for a dial from outside", c.dir, c.remote)
		}
	}
	if c := (dialedConn{dir: network.DirInbound, remote: "/ip4/11.77.0.2/tcp/51234"}); !dialedFromOutside(c) {
		t.Errorf("inbound from %s not taken for a dial from outside", c.remote)
	}
	s.dialedIn()
	check("unknown, dialed in from a public address", true)
	s.reachability(network.ReachabilityPrivate)
	check("private", false)
	s.reachability(network.ReachabilityUnknown)
	check("unknown again, no one dialed in since private", false)
	s.reachability(network.ReachabilityPublic)
	check("public", true)
	s.close()
	check("closed", false)
	s.reachability(network.ReachabilityPublic)
	check("public after close", false)
}
