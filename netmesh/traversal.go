package netmesh

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	"github.com/libp2p/go-libp2p/p2p/host/observedaddrs"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

func init() {
	// libp2p trusts an address that others say they see this node at
	// only once four different peers said so: a defence against strangers
	// on the public DHT lying. Every peer here holds the token, and a
	// network of friends may have only two or three members online, so the
	// word of one member is enough.
	observedaddrs.ActivationThresh = 1
}

// Relay limits. The relay serves members only; the limits bound what one
// relayed connection costs the member that relays it. Relayed peers are
// left out of splits, so what crosses a relay is requests, answers and
// gossip.
var relayResources = relayv2.Resources{
	Limit:                &relayv2.RelayLimit{Duration: 30 * time.Minute, Data: 256 << 20},
	ReservationTTL:       time.Hour,
	MaxReservations:      64,
	MaxCircuits:          16,
	BufferSize:           32 << 10,
	MaxReservationsPerIP: 16,
	// Friends behind one provider share an ASN: no limit beyond the total.
	MaxReservationsPerASN: 64,
}

// Connection kinds, as Peers reports them.
const (
	ConnDirect      = "direct"       // dialed directly, or accepted
	ConnHolePunched = "hole-punched" // direct, opened by hole punching through NATs
	ConnRelayed     = "relayed"      // only through a relay member
	ConnRelayLost   = "relay-lost"   // was relayed; its relay went away
	ConnNone        = ""             // no connection (gossip through others only)
)

// Reachability, as Node.Reachability reports it.
const (
	ReachabilityUnknown = "unknown" // not yet known, or traversal is off
	ReachabilityPublic  = "public"  // members outside this network can dial it
	ReachabilityPrivate = "private" // behind a NAT or firewall: reached through relays and hole punching
)

// traversal is the node's NAT-traversal state.
type traversal struct {
	mu           sync.Mutex
	hps          *holepunch.Service     // nil until started, or when traversal is off
	punched      map[peer.ID]bool       // hole punching opened the current direct connection
	punches      map[peer.ID]punchState // per peer this node punches to, while it has no direct connection
	relay        map[peer.ID]relayState // peers last seen relayed
	reachability network.Reachability
}

type relayState int

// punchState is how often this node punched to a peer, and when it does
// again.
type punchState struct {
	tries int
	next  time.Time
}

const (
	relayUp   relayState = iota + 1 // reached through a relay
	relayLost                       // was relayed, and that connection is gone
)

func newTraversal() *traversal {
	return &traversal{punched: map[peer.ID]bool{}, relay: map[peer.ID]relayState{},
		punches: map[peer.ID]punchState{}}
}

// traversalOptions turn on AutoNAT, relays and hole punching (see
// Config.Traversal), and port mapping.
func (n *Node) traversalOptions() []libp2p.Option {
	var opts []libp2p.Option
	if n.cfg.Traversal {
		opts = append(opts,
			libp2p.EnableRelay(),
			// The relay service is not libp2p's (EnableRelayService):
			// see relayServer.
			libp2p.EnableAutoRelayWithPeerSource(n.relayCandidates,
				autorelay.WithMinCandidates(1),
				autorelay.WithNumRelays(2),
				autorelay.WithBootDelay(0),
				// A member that failed a reservation is tried again
				// after 5 s, not libp2p's hour (or the 30 s used
				// before): a relaying member that restarts is back in
				// seconds, and it is the only way a member behind a
				// symmetric NAT is reached. Candidates are members
				// only, so the retries stay among friends.
				autorelay.WithBackoff(5*time.Second),
				autorelay.WithMinInterval(5*time.Second)),
			// Hole punching is started by startHolePunching, on the
			// finished host, so that it can be retried.
			libp2p.EnableNATService(),
		)
	} else {
		opts = append(opts, libp2p.DisableRelay())
	}
	if n.cfg.PortMap && !loopbackOnly(n.cfg.ListenAddrs) {
		opts = append(opts, libp2p.NATPortMap())
	}
	return opts
}

// loopbackOnly says whether every listen address is a loopback address:
// such a node has nothing to forward.
func loopbackOnly(addrs []string) bool {
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil || !manet.IsIPLoopback(m) {
			return false
		}
	}
	return len(addrs) > 0
}

// relayACL lets only admitted members reserve a slot or be relayed. Only
// token holders can connect at all; this also turns away removed members.
//
// It relays a pair one way only, from the lower peer id to the higher:
// hole punching starts on the side a relayed connection comes in to, and
// two punches of one pair at once, one from each side, each end up
// dialing the same pair of ports twice; the second dials fall back to
// other ports, and the roles of the simultaneous open get crossed. Both
// fail. With one direction, one side punches (see punchLoop), and a
// relayed connection carries streams both ways anyway.
type relayACL struct{ n *Node }

func (a relayACL) AllowReserve(p peer.ID, _ ma.Multiaddr) bool { return a.n.admitted(p) }

func (a relayACL) AllowConnect(src peer.ID, _ ma.Multiaddr, dest peer.ID) bool {
	return a.n.admitted(src) && a.n.admitted(dest) && relayDirection(src, dest)
}

// relayDirection says whether a relay connects src to dest.
func relayDirection(src, dest peer.ID) bool { return src < dest }

// relayCandidates offers autorelay the members that may relay: online
// members with a public address. Autorelay itself checks that a candidate
// serves relays (members do once AutoNAT finds them reachable).
func (n *Node) relayCandidates(ctx context.Context, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo, num)
	var cands []peer.AddrInfo
	for _, p := range n.roster.list() {
		if !p.Online || len(cands) == num {
			continue
		}
		pid, err := peer.Decode(p.PeerID)
		if err != nil || !n.admitted(pid) {
			continue
		}
		pi := peer.AddrInfo{ID: pid}
		for _, a := range p.Addrs {
			if m, err := ma.NewMultiaddr(a); err == nil && manet.IsPublicAddr(m) && !isRelayAddr(m) {
				pi.Addrs = append(pi.Addrs, m)
			}
		}
		if len(pi.Addrs) > 0 {
			cands = append(cands, pi)
		}
	}
	for _, c := range cands {
		out <- c
	}
	close(out)
	return out
}

func isRelayAddr(m ma.Multiaddr) bool {
	_, err := m.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// punchTracer notes which peers hole punching connected.
type punchTracer struct{ n *Node }

func (t punchTracer) Trace(e *holepunch.Event) {
	end, ok := e.Evt.(*holepunch.EndHolePunchEvt)
	if !ok {
		return
	}
	if end.Success {
		t.n.trav.mu.Lock()
		t.n.trav.punched[e.Remote] = true
		t.n.trav.mu.Unlock()
		t.n.log.Info("hole punching opened a direct connection", "peer", e.Remote.String(), "took", end.EllapsedTime.Round(time.Millisecond))
		return
	}
	t.n.log.Info("hole punching failed; staying relayed", "peer", e.Remote.String(), "err", end.Error)
}

// watchReachability follows what AutoNAT says about this node, and serves
// relays for members accordingly (relayServer).
func (n *Node) watchReachability(ctx context.Context, h host.Host) {
	sub, err := h.EventBus().Subscribe(new(event.EvtLocalReachabilityChanged))
	if err != nil {
		n.log.Warn("reachability events unavailable: this node relays for no member", "err", err)
		return
	}
	relays := newRelayServer(h, n.log, relayv2.WithResources(relayResources), relayv2.WithACL(relayACL{n}))
	dialedIn := make(chan struct{}, 1)
	h.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if dialedFromOutside(c) {
			select {
			case dialedIn <- struct{}{}:
			default:
			}
		}
	}})
	n.spawn(func() {
		defer relays.close()
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case <-dialedIn:
				relays.dialedIn()
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				r := e.(event.EvtLocalReachabilityChanged).Reachability
				n.trav.mu.Lock()
				changed := n.trav.reachability != r
				n.trav.reachability = r
				n.trav.mu.Unlock()
				relays.reachability(r)
				if changed {
					n.log.Info("reachability from the internet", "reachable", reachabilityString(r))
				}
			}
		}
	})
}

// Reachability says whether members outside this node's LAN can dial it
// directly: public, private or unknown.
func (n *Node) Reachability() string {
	n.trav.mu.Lock()
	defer n.trav.mu.Unlock()
	return reachabilityString(n.trav.reachability)
}

func reachabilityString(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return ReachabilityPublic
	case network.ReachabilityPrivate:
		return ReachabilityPrivate
	}
	return ReachabilityUnknown
}

// connInfo says how this node is connected to pid: the kind (Conn*
// constants), the transport, and the remote address of the best
// connection.
func (n *Node) connInfo(h host.Host, pid peer.ID) (kind, transport, addr string) {
	conns := h.Network().ConnsToPeer(pid)
	var best network.Conn
	for _, c := range conns {
		if best == nil || (isRelayAddr(best.RemoteMultiaddr()) && !isRelayAddr(c.RemoteMultiaddr())) {
			best = c
		}
	}
	n.trav.mu.Lock()
	defer n.trav.mu.Unlock()
	if best == nil {
		delete(n.trav.punched, pid)
		switch n.trav.relay[pid] {
		case relayUp:
			n.trav.relay[pid] = relayLost
			n.log.Info("lost the relay to a peer: it is reached through other members only", "peer", pid.String())
			return ConnRelayLost, "", ""
		case relayLost:
			return ConnRelayLost, "", ""
		}
		return ConnNone, "", ""
	}
	addr = best.RemoteMultiaddr().String()
	transport = transportOf(best.RemoteMultiaddr())
	if isRelayAddr(best.RemoteMultiaddr()) {
		n.trav.relay[pid] = relayUp
		delete(n.trav.punched, pid)
		return ConnRelayed, transport, addr
	}
	delete(n.trav.relay, pid)
	if n.trav.punched[pid] {
		return ConnHolePunched, transport, addr
	}
	return ConnDirect, transport, addr
}

// transportOf names the transport of a (possibly relayed) address: the
// part that reaches the peer, e.g. "tcp", "quic" or "tcp via relay".
func transportOf(m ma.Multiaddr) string {
	var names []string
	for _, c := range m {
		switch c.Protocol().Code {
		case ma.P_TCP, ma.P_QUIC_V1, ma.P_WS, ma.P_WEBTRANSPORT:
			names = append(names, c.Protocol().Name)
		}
	}
	names = slices.Compact(names)
	if len(names) == 0 {
		return ""
	}
	if isRelayAddr(m) {
		return names[0] + " via relay"
	}
	return names[len(names)-1]
}

// Hole punching. libp2p's service punches when a relayed connection comes
// in, once this node knows a public address of its own; a connection that
// came before that, or a punch that failed while the NATs' state was
// fresh, would stay relayed for good. So the node runs the service itself
// and, for an online peer it reaches only through a relay, punches again
// now and then: punchEvery apart for punchAttempts tries, then every
// punchLater, for NATs change their minds (a router restarts, a laptop
// moves). Between two members behind NATs the one with the higher peer id
// does, as it is the one the relayed connection comes in to (relayACL):
// the two never punch at once. A relayed connection that went away comes
// back from the other side, which dials it again on the next heartbeat.
const (
	punchEvery    = 15 * time.Second
	punchAttempts = 6
	punchLater    = 5 * time.Minute
)

func (n *Node) startHolePunching(ctx context.Context, h host.Host) {
	withIDs, ok := h.(interface{ IDService() identify.IDService })
	if !ok {
		n.log.Warn("hole punching unavailable: the host has no identify service")
		return
	}
	addrs := func() []ma.Multiaddr { return punchAddrs(h) }
	svc, err := holepunch.NewService(h, withIDs.IDService(), addrs, holepunch.WithTracer(punchTracer{n}))
	if err != nil {
		n.log.Warn("hole punching unavailable", "err", err)
		return
	}
	n.trav.mu.Lock()
	n.trav.hps = svc
	n.trav.mu.Unlock()
	n.spawn(func() { n.punchLoop(ctx, h, svc) })
	n.spawn(func() { n.watchPunchAddrs(ctx, h) })
}

// punchAddrs are the public addresses of this node, observed by others
// or mapped by the router, for hole punching.
func punchAddrs(h host.Host) []ma.Multiaddr {
	all := h.Addrs()
	if a, ok := h.(interface{ AllAddrs() []ma.Multiaddr }); ok {
		all = a.AllAddrs()
	}
	return slices.DeleteFunc(slices.Clone(all), func(m ma.Multiaddr) bool { return !manet.IsPublicAddr(m) || isRelayAddr(m) })
}

func (n *Node) punchLoop(ctx context.Context, h host.Host, svc *holepunch.Service) {
	t := time.NewTicker(punchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if len(punchAddrs(h)) == 0 {
			continue // DirectConnect would wait for one
		}
		now := time.Now()
		for _, id := range n.roster.onlineIDs() {
			pid, err := peer.Decode(id)
			if err != nil || pid >= n.id || !n.admitted(pid) {
				continue
			}
			n.forgetPunchAddrs(h, pid)
			switch h.Network().Connectedness(pid) {
			case network.Connected:
				n.trav.mu.Lock()
				delete(n.trav.punches, pid) // a later fall back to a relay starts afresh
				n.trav.mu.Unlock()
				continue
			case network.Limited:
			default:
				continue // the peer dials the relay again
			}
			n.trav.mu.Lock()
			ps := n.trav.punches[pid]
			due := !now.Before(ps.next)
			if due {
				ps.tries++
				wait := punchEvery
				if ps.tries >= punchAttempts {
					wait = punchLater
				}
				ps.next = now.Add(wait - time.Second) // by the tick after
				n.trav.punches[pid] = ps
			}
			n.trav.mu.Unlock()
			if !due {
				continue
			}
			n.spawn(func() {
				if err := svc.DirectConnect(pid); err != nil {
					n.log.Debug("hole punching: another try failed", "peer", pid.String(), "try", ps.tries, "err", err)
				}
			})
		}
	}
}

// stopHolePunching closes the service; before the host closes.
func (n *Node) stopHolePunching() {
	n.trav.mu.Lock()
	svc := n.trav.hps
	n.trav.hps = nil
	n.trav.mu.Unlock()
	if svc != nil {
		svc.Close()
	}
}
