package netmesh

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mudler/edgevpn/pkg/hub"
)

// maxNotice bounds a notice's payload.
const maxNotice = 256 << 10

// Notify publishes payload to every member, signed by this node. Members
// receive it through Config.OnNotice. Delivery is best effort: a member
// that is offline misses it, so a notice that must arrive is published
// again from time to time.
func (n *Node) Notify(payload []byte) error {
	if len(payload) > maxNotice {
		return fmt.Errorf("notice of %d bytes: at most %d", len(payload), maxNotice)
	}
	if err := n.ready(); err != nil {
		return err
	}
	return n.publish(codecNotice, payload)
}

// Block refuses a peer from now on: its connections are closed, it is
// never dialed or accepted again, its messages are dropped, and it leaves
// the roster. It lasts as long as the node; Config.Admit makes it last
// across restarts.
func (n *Node) Block(peerID string) error {
	pid, err := peer.Decode(peerID)
	if err != nil {
		return fmt.Errorf("peer id %q: %w", peerID, err)
	}
	if pid == n.id {
		return errors.New("a node cannot block itself")
	}
	n.mu.Lock()
	if n.blocked == nil {
		n.blocked = map[peer.ID]bool{}
	}
	n.blocked[pid] = true
	ev, h := n.ev, n.host
	n.mu.Unlock()
	if ev != nil && h != nil {
		if cg := ev.ConnectionGater(); cg != nil {
			if err := cg.BlockPeer(pid); err != nil {
				n.log.Debug("block peer in the connection gater", "peer", peerID, "err", err)
			}
		}
		_ = h.Network().ClosePeer(pid)
	}
	n.roster.remove(peerID)
	return nil
}

func (n *Node) isBlocked(pid peer.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.blocked[pid]
}

// Publish puts a raw message on the mesh's sealed channel, as any holder of
// the token could. Members drop anything that is not a valid signed
// message: tools and tests use this to check exactly that.
func (n *Node) Publish(message string) error {
	if err := n.ready(); err != nil {
		return err
	}
	return n.ev.PublishMessage(&hub.Message{Message: message})
}

// ready says whether the node has joined the mesh and can publish.
func (n *Node) ready() error {
	select {
	case <-n.up:
	default:
		return errors.New("netmesh: node is not up")
	}
	select {
	case <-n.done:
		return ErrClosed
	default:
		return nil
	}
}
