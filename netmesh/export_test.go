package netmesh

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"strings"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
)

// DialAside opens a connection from n to the peer id with n's transport
// but outside n's swarm: the peer counts it as one more connection from n,
// while n keeps using the one it has. It returns the function that closes
// it.
func DialAside(ctx context.Context, n *Node, id string) (func() error, error) {
	h := n.getHost()
	pid, err := peer.Decode(id)
	if h == nil || err != nil {
		return nil, fmt.Errorf("node not up, or bad peer id %q: %v", id, err)
	}
	sw, ok := h.Network().(*swarm.Swarm)
	if !ok {
		return nil, fmt.Errorf("the host's network is a %T", h.Network())
	}
	for _, a := range h.Peerstore().Addrs(pid) {
		if isRelayAddr(a) {
			continue
		}
		if t := sw.TransportForDialing(a); t != nil {
			c, err := t.Dial(ctx, a, pid)
			if err != nil {
				return nil, err
			}
			return c.Close, nil
		}
	}
	return nil, fmt.Errorf("no address of %s to dial", id)
}

// Conns is how many connections n has to the peer id.
func Conns(n *Node, id string) int {
	h := n.getHost()
	pid, err := peer.Decode(id)
	if h == nil || err != nil {
		return 0
	}
	return len(h.Network().ConnsToPeer(pid))
}

// CloseOldestConn closes n's oldest connection to the peer id.
func CloseOldestConn(n *Node, id string) error {
	h := n.getHost()
	pid, err := peer.Decode(id)
	if h == nil || err != nil {
		return fmt.Errorf("node not up, or bad peer id %q: %v", id, err)
	}
	var oldest network.Conn
	for _, c := range h.Network().ConnsToPeer(pid) {
		if oldest == nil || c.Stat().Opened.Before(oldest.Stat().Opened) {
			oldest = c
		}
	}
	if oldest == nil {
		return fmt.Errorf("no connection to %s", id)
	}
	return oldest.Close()
}

// ResetGossip resets every gossip stream between n and the peer id, both
// ways, as a connection stalled by the kernel would break them; it
// returns how many it reset.
func ResetGossip(n *Node, id string) int {
	h := n.getHost()
	pid, err := peer.Decode(id)
	if h == nil || err != nil {
		return 0
	}
	reset := 0
	for _, c := range h.Network().ConnsToPeer(pid) {
		for _, s := range c.GetStreams() {
			if isGossip(s.Protocol()) {
				s.Reset()
				reset++
			}
		}
	}
	return reset
}

func isGossip(p protocol.ID) bool { return strings.HasPrefix(string(p), "/meshsub/") }

// HeartbeatPace reads a message of the mesh's sealed channel as Config.Tap
// sees it: the signer and announced interval of a heartbeat.
func HeartbeatPace(msg string) (from string, every time.Duration, ok bool) {
	signer, codec, payload, err := unseal(msg)
	if err != nil || string(codec) != string(codecHeartbeat) {
		return "", 0, false
	}
	var hb heartbeat
	if json.Unmarshal(payload, &hb) != nil {
		return "", 0, false
	}
	return signer.String(), time.Duration(hb.EveryMS) * time.Millisecond, true
}

// PaceEvery is paceEvery.
var PaceEvery = paceEvery

// IdleStretch is idleStretch.
const IdleStretch = idleStretch

// SplitLAN makes members alone never ask the LAN, as when their questions'
// answers are lost, and members in the mesh ask every meshAsk per member:
// until the test ends.
func SplitLAN(t interface{ Cleanup(func()) }, meshAsk time.Duration) {
	alone, ask := mdnsAskAlone, mdnsMeshAsk
	mdnsAskAlone, mdnsMeshAsk = false, meshAsk
	t.Cleanup(func() { mdnsAskAlone, mdnsMeshAsk = alone, ask })
}

// Unlink keeps n and the peer id from connecting to each other directly
// (n's connection gater refuses the peer), while both stay members that
// hear each other through others.
func Unlink(n *Node, id string) error {
	pid, err := peer.Decode(id)
	if err != nil {
		return err
	}
	n.mu.Lock()
	ev, h := n.ev, n.host
	n.mu.Unlock()
	if ev == nil || h == nil || ev.ConnectionGater() == nil {
		return fmt.Errorf("node not up, or without a connection gater")
	}
	if err := ev.ConnectionGater().BlockPeer(pid); err != nil {
		return err
	}
	return h.Network().ClosePeer(pid)
}
