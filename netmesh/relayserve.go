package netmesh

import (
	"log/slog"
	"sync"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	manet "github.com/multiformats/go-multiaddr/net"
)

// relayServer runs the relay service for members behind NATs, on a member
// that members outside its network can dial.
//
// libp2p's own relay manager serves only while AutoNAT says "public", and
// AutoNAT learns that by asking peers that serve AutoNAT to dial back. A
// member behind a NAT stops serving AutoNAT once it knows it is private,
// so in a pool of friends at home, where the member with a public address
// is the only one not behind a NAT, that member, restarted, finds no one to
// ask: it stays "unknown" and never relays again, and a member behind a
// symmetric NAT is cut off (seen in the lab: 0 of 3 runs relayed again
// within 2 minutes).
//
// So the relay also serves while AutoNAT does not know yet and a member has
// dialed this node directly from a public address: that member reached it
// from outside its network, which is what AutoNAT's dial-back would have
// shown. Hole-punched connections are dialed from both sides and count as
// outbound, so they are not taken for this. The relay stops when AutoNAT
// says private; relayACL still admits members only.
type relayServer struct {
	h    host.Host
	opts []relayv2.Option
	log  *slog.Logger

	mu      sync.Mutex
	relay   *relayv2.Relay // nil while not serving
	reach   network.Reachability
	dialled bool // a member dialed in from a public address since AutoNAT last said private
	closed  bool
}

func newRelayServer(h host.Host, log *slog.Logger, opts ...relayv2.Option) *relayServer {
	return &relayServer{h: h, log: log, opts: opts}
}

// reachability takes what AutoNAT says.
func (s *relayServer) reachability(r network.Reachability) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reach = r
	if r == network.ReachabilityPrivate {
		s.dialled = false
	}
	s.update()
}

// dialedFromOutside says whether c is a direct connection a member dialed
// from a public address.
func dialedFromOutside(c network.Conn) bool {
	st := c.Stat()
	return st.Direction == network.DirInbound && !st.Limited && !isRelayAddr(c.RemoteMultiaddr()) &&
		manet.IsPublicAddr(c.RemoteMultiaddr())
}

// dialedIn notes that a member dialed this node from a public address. It
// starts the relay, so it must not be called from a network notification:
// the relay registers one of its own, which waits for those running.
func (s *relayServer) dialedIn() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dialled {
		return
	}
	s.dialled = true
	s.update()
}

// serving says whether the relay service runs.
func (s *relayServer) serving() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.relay != nil
}

func (s *relayServer) update() {
	want := !s.closed && (s.reach == network.ReachabilityPublic ||
		s.reach == network.ReachabilityUnknown && s.dialled)
	switch {
	case want && s.relay == nil:
		r, err := relayv2.New(s.h, s.opts...)
		if err != nil {
			s.log.Warn("cannot relay for members", "err", err)
			return
		}
		s.relay = r
		s.log.Debug("relaying for members", "reachable", reachabilityString(s.reach), "dialed_in", s.dialled)
	case !want && s.relay != nil:
		_ = s.relay.Close()
		s.relay = nil
		s.log.Debug("no longer relaying for members")
	}
}

// close stops the relay service for good.
func (s *relayServer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.update()
}
