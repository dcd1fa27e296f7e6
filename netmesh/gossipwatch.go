package netmesh

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The gossip layer (go-libp2p-pubsub) keeps one stream to each connected
// peer. When that stream breaks while the connection stays (the kernel
// stalled the process, a duplicate connection closed under it), it opens
// another, but only four times in ten minutes: after that it drops the
// peer and never writes to it again while the connection lasts. It also
// forgets what the peer subscribed to when the stream breaks, and a new
// hello that arrives before it noticed is lost. Either way a live,
// connected member stops hearing this node (or this node stops hearing
// it) until the connection closes, and pings keep it looking online.
//
// watchGossip finds a member connected directly for gossipGrace that the
// room does not list, and closes its connections: both sides redial at
// once (see disconnected), and the new connection starts gossip afresh.
const (
	// gossipGrace is how long a connected member may stay out of the
	// room: the gossip layer's own retries take well under a second, a
	// new connection's hello a round trip.
	gossipGrace = 3 * time.Second
	// gossipResetQuiet is the least time between two resets of one
	// peer: a member in another room (its clock is far off) is not
	// reconnected in a loop.
	gossipResetQuiet = 30 * time.Second
)

func (n *Node) watchGossip(ctx context.Context, h host.Host) {
	t := time.NewTicker(max(n.cfg.HeartbeatInterval/2, 250*time.Millisecond))
	defer t.Stop()
	out := map[peer.ID]time.Time{}   // connected members not in the room, since when
	reset := map[peer.ID]time.Time{} // when each was last reset
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		room, err := n.ev.MessageHub.ListPeers()
		if err != nil {
			continue // between rooms
		}
		in := make(map[peer.ID]bool, len(room))
		for _, p := range room {
			in[p] = true
		}
		now := time.Now()
		seen := map[peer.ID]bool{}
		for _, pid := range h.Network().Peers() {
			if in[pid] || !n.admitted(pid) || !directFor(h, pid, now, gossipGrace) {
				continue
			}
			seen[pid] = true
			since, ok := out[pid]
			if !ok {
				out[pid] = now
				continue
			}
			if now.Sub(since) < gossipGrace || now.Sub(reset[pid]) < gossipResetQuiet {
				continue
			}
			n.log.Info("gossip dropped a connected member; connecting to it afresh", "peer", pid.String(), "out_of_room", now.Sub(since).Round(time.Millisecond))
			reset[pid] = now
			_ = h.Network().ClosePeer(pid)
		}
		for pid := range out {
			if !seen[pid] {
				delete(out, pid)
			}
		}
		for pid, at := range reset {
			if now.Sub(at) > gossipResetQuiet {
				delete(reset, pid)
			}
		}
	}
}

// directFor says whether some direct (not relayed) connection to pid has
// been open for at least d.
func directFor(h host.Host, pid peer.ID, now time.Time, d time.Duration) bool {
	for _, c := range h.Network().ConnsToPeer(pid) {
		if st := c.Stat(); !st.Limited && now.Sub(st.Opened) >= d {
			return true
		}
	}
	return false
}
