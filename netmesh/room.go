package netmesh

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// connected announces this node to a peer as soon as the peer has joined the
// mesh room over a new connection, instead of waiting for the next heartbeat;
// a peer marked offline when its connection closed is online again then.
func (n *Node) connected(nw network.Network, c network.Conn) {
	pid := c.RemotePeer()
	if !n.admitted(pid) {
		// Refused: Config.Admit turned it away (a removed member, or
		// anyone but the expected members of a retired network).
		n.spawn(func() { _ = nw.ClosePeer(pid) })
		return
	}
	n.mu.Lock()
	n.entering[pid] = time.Now().Add(roomWait)
	start := !n.watching
	n.watching = true
	n.mu.Unlock()
	if start && !n.spawn(n.watchEntering) {
		n.mu.Lock()
		n.watching = false
		n.mu.Unlock()
	}
}

// roomWait bounds how long a newly connected peer is watched for in the
// room.
const roomWait = 30 * time.Second

// watchEntering waits for the peers of new connections to appear in the
// mesh room, and announces this node as soon as one does. One watcher
// asks the room for its members every roomPoll for all of them: the room
// answers from the gossip layer's event loop, which also processes the
// peers' hellos, so asking once per connection every few milliseconds
// (as a mesh of 50 does when it starts) held up the very hellos it was
// waiting for, by 3 to 4 s.
func (n *Node) watchEntering() {
	t := time.NewTicker(roomPoll)
	defer t.Stop()
	for {
		n.mu.Lock()
		if n.stopping || len(n.entering) == 0 {
			clear(n.entering)
			n.watching = false
			n.mu.Unlock()
			return
		}
		n.mu.Unlock()
		if room, err := n.ev.MessageHub.ListPeers(); err == nil {
			now := time.Now()
			var entered []peer.ID
			n.mu.Lock()
			for _, p := range room {
				if _, ok := n.entering[p]; ok {
					delete(n.entering, p)
					entered = append(entered, p)
				}
			}
			for p, until := range n.entering {
				if now.After(until) {
					delete(n.entering, p) // another member's mesh, or not a member
				}
			}
			n.mu.Unlock()
			for _, p := range entered {
				if n.roster.revive(p.String(), now) {
					n.log.Info("peer online again: it connected", "peer", p.String())
				}
			}
			if len(entered) > 0 {
				n.announceNow()
			}
		}
		<-t.C
	}
}

// roomPoll is how often watchEntering looks at the room.
const roomPoll = 20 * time.Millisecond
