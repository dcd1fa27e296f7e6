package netmesh

import (
	"context"
	"encoding/hex"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	"github.com/potluck-gpu/potluck/internal/ctxtime"
)

// The members' DHT. It is a Kademlia DHT of its own: its protocol names
// derive from the token, so only members speak it, and it is bootstrapped
// from the invite's addresses and from the members this node remembers,
// never from the public IPFS nodes (they could not complete a handshake
// bound to the token anyway). Members meet at a rendezvous key, also
// derived from the token, which lets a node that knows one stale address
// find the members that are online now.

const (
	dhtFirstLookup = 2 * time.Second
	dhtMaxPeriod   = 5 * time.Minute
)

func (n *Node) dhtProtocolPrefix() protocol.ID {
	return protocol.ID("/potluck/" + hex.EncodeToString(n.tok.derive("dht protocol v1")[:8]))
}

func (n *Node) rendezvous() string {
	return "potluck-" + hex.EncodeToString(n.tok.derive("dht rendezvous v1")[:16])
}

// startDHT starts the members' DHT on h and the loop that advertises this
// node at the rendezvous and connects to the members found there.
func (n *Node) startDHT(ctx context.Context, h host.Host) error {
	kad, err := dht.New(ctx, h,
		dht.ProtocolPrefix(n.dhtProtocolPrefix()),
		// Every member answers queries: behind a NAT too, over the
		// connections it has. Left to itself, a NATed node would be a
		// client only and a network of NATed friends would have no DHT.
		dht.Mode(dht.ModeServer),
		dht.BootstrapPeersFunc(n.knownAddrInfos),
	)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.dht = kad
	n.mu.Unlock()
	if err := kad.Bootstrap(ctx); err != nil {
		n.log.Debug("members' DHT bootstrap", "err", err)
	}
	rd := drouting.NewRoutingDiscovery(kad)
	n.spawn(func() { n.rendezvousLoop(ctx, h, rd) })
	return nil
}

func (n *Node) rendezvousLoop(ctx context.Context, h host.Host, rd *drouting.RoutingDiscovery) {
	rv := n.rendezvous()
	wait := dhtFirstLookup
	for {
		if !ctxtime.Sleep(ctx, wait) {
			return
		}
		wait = min(wait*2, dhtMaxPeriod)
		if len(h.Network().Peers()) == 0 {
			wait = dhtFirstLookup * 4 // nobody to ask yet
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, time.Minute)
		if _, err := rd.Advertise(lctx, rv, discovery.TTL(time.Hour)); err != nil {
			n.log.Debug("members' DHT: advertise", "err", err)
		}
		found, err := rd.FindPeers(lctx, rv)
		if err == nil {
			for pi := range found {
				if pi.ID == n.id || len(pi.Addrs) == 0 || h.Network().Connectedness(pi.ID) != network.NotConnected {
					continue
				}
				n.connectPeer(pi.ID, addrStrings(pi.Addrs))
			}
		}
		cancel()
	}
}
