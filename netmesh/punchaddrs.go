package netmesh

import (
	"context"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Hole punching dials the other member's public address from the port
// this node listens on, at the moment the other dials back. go-libp2p takes
// a random port instead when that port cannot be bound toward that address,
// because a socket of the same four-tuple is still open (a dial of its own
// under way) or in TIME-WAIT; the NAT then maps a port the other member is
// not dialing toward, and the punch fails, again and again while other
// dials keep the four-tuple busy. In the lab that happened in 3 of about 15
// internet runs: every punch of one member left from a random port for 3
// minutes. The other dials came from what the address book holds: identify
// adds a member's public addresses over the relayed connection, and the
// members' DHT and pubsub open direct connections from them. So while this
// node is private and a member is reached only through a relay, that
// member's public addresses are for hole punching alone, which gets them
// over the relay when it punches; they leave the address book.

// forgetPunchAddrs removes pid's public addresses from the address book
// when AutoNAT has found this node private (hole punching waits for that
// too) and pid is reached only through a relay.
func (n *Node) forgetPunchAddrs(h host.Host, pid peer.ID) {
	if n.Reachability() != ReachabilityPrivate || h.Network().Connectedness(pid) != network.Limited {
		return
	}
	ps := h.Peerstore()
	for _, m := range ps.Addrs(pid) {
		if manet.IsPublicAddr(m) && !isRelayAddr(m) {
			ps.SetAddr(pid, m, 0)
		}
	}
}

// watchPunchAddrs forgets, each time identify has (re)learnt a member's
// addresses, those that are for hole punching alone, until ctx ends.
func (n *Node) watchPunchAddrs(ctx context.Context, h host.Host) {
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		n.log.Warn("identify events unavailable: members' public addresses stay dialable", "err", err)
		return
	}
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			n.forgetPunchAddrs(h, e.(event.EvtPeerIdentificationCompleted).Peer)
		}
	}
}
