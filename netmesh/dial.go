package netmesh

import (
	"context"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/potluck-gpu/potluck/internal/ctxtime"
)

// keepConnected dials a bootstrap peer and redials it whenever the connection
// drops, with capped backoff.
func (n *Node) keepConnected(ctx context.Context, pi peer.AddrInfo) {
	h := n.getHost()
	const maxWait = 30 * time.Second
	wait := 250 * time.Millisecond
	for {
		if !reached(h, pi.ID) && n.admitted(pi.ID) {
			clearBackoff(h, pi.ID) // this loop has a backoff of its own
			dctx, cancel := context.WithTimeout(limitedOK(ctx), 10*time.Second)
			err := h.Connect(dctx, pi)
			cancel()
			if err != nil && ctx.Err() == nil {
				n.log.Debug("bootstrap peer unreachable", "peer", pi.ID.String(), "err", err)
				wait = min(wait*2, maxWait)
			} else {
				wait = 250 * time.Millisecond
			}
		}
		next := wait
		if reached(h, pi.ID) {
			next = 5 * time.Second // just check on it now and then
		}
		if !ctxtime.Sleep(ctx, next) {
			return
		}
	}
}

// lanPeerFound connects to a member found on the LAN.
func (n *Node) lanPeerFound(pi peer.AddrInfo) {
	if !n.enter() {
		return
	}
	defer n.wg.Done()
	h := n.getHost()
	if pi.ID == h.ID() || h.Network().Connectedness(pi.ID) == network.Connected || !n.admitted(pi.ID) {
		return
	}
	if !n.awaitTurn(pi.ID) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, pi); err != nil {
		n.log.Debug("mDNS peer unreachable", "peer", pi.ID.String(), "err", err)
	}
}

// yieldWait is how long the member with the higher peer id of a pair
// leaves the other to dial first.
const yieldWait = time.Second

// awaitTurn says whether to dial pid now. Two members that hear of each
// other at the same moment (mDNS answers reach both at once, as do their
// heartbeats) dial each other at once, from the port each listens on
// (libp2p reuses it); on a link whose delay is longer than the gap between
// the two dials, the SYNs cross and open one TCP connection from both
// ends, on which both start the handshake as its initiator and fail
// ("noise: message is too short"), and their next tries, at the same
// moments again, fail alike: in the lab, two members 10 ms apart never
// met in 3 minutes. So the member with the lower peer id dials at once,
// and the other after yieldWait, only if no connection came meanwhile;
// false also when the node stops.
func (n *Node) awaitTurn(pid peer.ID) bool {
	if pid > n.id {
		return true
	}
	h := n.getHost()
	for deadline := time.Now().Add(yieldWait); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		n.mu.Lock()
		stopping := n.stopping
		n.mu.Unlock()
		if stopping || h == nil || reached(h, pid) {
			return false
		}
	}
	return true
}

// connectPeer makes sure there is a direct connection to a peer heard about
// through the mesh, so its services can be dialed and its RTT measured.
func (n *Node) connectPeer(pid peer.ID, addrs []string) {
	h := n.getHost()
	if h == nil || pid == n.id || reached(h, pid) || !n.admitted(pid) {
		return
	}
	// Two members behind NATs that dial each other's public address at
	// once open one TCP connection from both ends (a simultaneous open
	// through the NATs), on which both start the handshake as its
	// initiator and fail. So a member behind a NAT leaves the public
	// addresses of a peer that is reached through relays (it announces a
	// relay address) to hole punching, which settles the roles; and until
	// relays are known, only the member with the lower peer id dials them.
	//
	// Relays connect a pair one way only (relayACL): a peer's relay
	// address is for the member with the lower peer id to dial.
	yield := n.Reachability() != ReachabilityPublic && (pid < n.id || slices.ContainsFunc(addrs, isRelayString))
	if yield {
		// h.Connect dials every address the peerstore holds for the
		// peer, not only pi's: its public ones, learned by identify or
		// from earlier heartbeats, must go too, or both members still
		// dial each other's public address at once.
		ps := h.Peerstore()
		for _, m := range ps.Addrs(pid) {
			if manet.IsPublicAddr(m) && !isRelayAddr(m) {
				ps.SetAddr(pid, m, 0)
			}
		}
	}
	pi := peer.AddrInfo{ID: pid}
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil || (yield && manet.IsPublicAddr(m) && !isRelayAddr(m)) || (isRelayAddr(m) && !relayDirection(n.id, pid)) {
			continue
		}
		pi.Addrs = append(pi.Addrs, m)
	}
	if len(pi.Addrs) == 0 {
		return
	}
	n.mu.Lock()
	if n.dialing[pid] || n.stopping {
		n.mu.Unlock()
		return
	}
	n.dialing[pid] = true
	n.mu.Unlock()
	n.spawn(func() {
		defer func() {
			n.mu.Lock()
			delete(n.dialing, pid)
			n.mu.Unlock()
		}()
		if !n.awaitTurn(pid) {
			return
		}
		ctx, cancel := context.WithTimeout(limitedOK(context.Background()), 10*time.Second)
		defer cancel()
		clearBackoff(h, pid)
		if err := h.Connect(ctx, pi); err != nil {
			n.log.Debug("peer unreachable", "peer", pid.String(), "err", err)
		}
	})
}

// clearBackoff forgets earlier failed dials to pid. Peers of a mesh hear of
// each other through heartbeats and often dial each other at the same
// moment; the loser of that race must not lock the pair out for the
// swarm's backoff period.
func clearBackoff(h host.Host, pid peer.ID) {
	if sw, ok := h.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(pid)
	}
}

// limitedOK lets ctx use, and dial, relayed connections: relays serve
// members only, and a relayed connection is what lets hole punching start.
func limitedOK(ctx context.Context) context.Context {
	return network.WithAllowLimitedConn(ctx, "potluck mesh")
}

// reached says whether this node has a connection to pid, direct or
// relayed. A relayed pair needs no new dial: hole punching upgrades it.
func reached(h host.Host, pid peer.ID) bool {
	c := h.Network().Connectedness(pid)
	return c == network.Connected || c == network.Limited
}

func isRelayString(a string) bool {
	m, err := ma.NewMultiaddr(a)
	return err == nil && isRelayAddr(m)
}
