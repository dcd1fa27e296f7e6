package netmesh

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
)

// A peer whose last connection closes is dialed once more at once; if
// that fails it is offline at once, instead of once it has missed about
// three heartbeats. A node that was closed or killed, or that turned this
// node away (a removal), shows as gone within turnedAwayGrace of the
// refused dial; one whose machine does not answer, within redialTimeout.
// Heartbeat expiry stays for the peers this node hears of through others
// only, and for a connection that dies without closing (a cable pulled).
const (
	// redialTimeout bounds the redial made when the last connection to a
	// peer closed, and the wait for the peer to connect back.
	redialTimeout = 1500 * time.Millisecond
	// turnedAwayGrace is how long a peer whose addresses all refused the
	// redial has to connect back: about what its own redial takes.
	turnedAwayGrace = 300 * time.Millisecond
	// redialQuiet is how long after one such dial a peer whose
	// connection closes again is not dialed again, only given
	// turnedAwayGrace to connect back: a peer that lets a connection in
	// and then closes it (a member that removed this node) is not dialed
	// in a loop.
	redialQuiet = 10 * time.Second
)

// lastBeat returns the boot and sequence number of the last heartbeat
// heard from an online peer; ok is false if the peer is not online.
func (r *roster) lastBeat(id string) (boot string, seq uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, known := r.peers[id]
	if !known || !p.online {
		return "", 0, false
	}
	return p.boot, p.seq, true
}

// cut marks a peer offline at once: the last connection to it closed
// when its last heartbeat was (boot, seq), and it could not be reached
// again. It does nothing if the peer showed a sign of life since (see
// afterCut) or is offline already. It reports whether it marked it.
func (r *roster) cut(id, boot string, seq uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.peers[id]
	if !ok || !p.online || r.closed || p.boot != boot || p.seq > seq+1 {
		return false
	}
	r.markCut(p, boot, seq)
	return true
}

// markCut marks an online peer offline, with (boot, seq) its last
// heartbeat before it went: only a later sign of life brings it back
// (afterCut, revive). r.mu must be held.
func (r *roster) markCut(p *peerState, boot string, seq uint64) {
	p.online, p.cut = false, true
	p.cutBoot, p.cutSeq = boot, seq
	r.emit(PeerOffline, p)
}

// afterCut says whether a heartbeat shows that the peer lives on after
// its connection closed: it comes from a new run of the peer, or it is at
// least two heartbeats past the last one heard before the connection
// closed. The one right after may have been on its way through other
// members when the peer went: gossip delivers late, never early.
func (p *peerState) afterCut(hb heartbeat) bool {
	return hb.Boot != p.cutBoot || hb.Seq > p.cutSeq+1
}

// revive brings back at once a peer that cut marked offline, now that it
// is connected again and has joined the mesh room; it reports whether it
// did. A peer offline for missed heartbeats waits for its next one.
func (r *roster) revive(id string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.peers[id]
	if !ok || p.online || !p.cut || r.closed {
		return false
	}
	p.online, p.cut = true, false
	p.lastSeen = now
	r.emit(PeerJoined, p)
	return true
}

// disconnected is the network's notice that a connection closed. When it
// was the last one to an online peer, the peer is redialed in the
// background (see redial).
func (n *Node) disconnected(nw network.Network, c network.Conn) {
	pid := c.RemotePeer()
	if c := nw.Connectedness(pid); c == network.Connected || c == network.Limited {
		return // another connection carries on
	}
	boot, seq, online := n.roster.lastBeat(pid.String())
	if !online {
		n.alone() // a removed peer, or one not heard from yet
		return
	}
	if !n.admitted(pid) {
		n.lost(pid, boot, seq, "its connection closed, and it is not admitted")
		return
	}
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopping || n.redialing[pid] {
		return
	}
	last, ok := n.redialed[pid]
	dial := !ok || now.Sub(last) >= redialQuiet
	if dial {
		for id, t := range n.redialed {
			if now.Sub(t) >= redialQuiet {
				delete(n.redialed, id)
			}
		}
		n.redialed[pid] = now
	}
	n.redialing[pid] = true
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.redial(pid, boot, seq, dial)
	}()
}

// redial dials a peer whose last connection closed (if dial is set: a peer
// dialed moments ago is not dialed in a loop), once and briefly, and marks
// it offline if that fails. Either side may reconnect: a peer behind a NAT
// can only dial out, and a relayed pair is dialed from one side
// (relayACL). So a failed dial waits for the peer to connect back: the
// rest of redialTimeout, or only turnedAwayGrace when every address of
// the peer turned the dial away or there was no dial.
func (n *Node) redial(pid peer.ID, boot string, seq uint64, dial bool) {
	defer func() {
		n.mu.Lock()
		delete(n.redialing, pid)
		n.mu.Unlock()
	}()
	h := n.getHost()
	n.mu.Lock()
	runCtx := n.runCtx
	n.mu.Unlock()
	if h == nil || runCtx == nil {
		return
	}
	ctx, cancel := context.WithTimeout(limitedOK(runCtx), redialTimeout)
	defer cancel()
	brief := !dial
	if dial {
		clearBackoff(h, pid)
		err := h.Connect(ctx, peer.AddrInfo{ID: pid})
		if err != nil {
			n.log.Debug("redial a peer whose connection closed", "peer", pid.String(), "err", err)
		}
		brief = err != nil && turnedAway(err)
	}
	if brief {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, turnedAwayGrace)
		defer stop()
	}
	awaitConn(ctx, h, pid)
	if runCtx.Err() != nil || reached(h, pid) {
		return // the node is stopping, or the peer is back
	}
	n.lost(pid, boot, seq, "its connection closed and a redial failed")
}

// awaitConn waits until this node has a connection to pid or ctx ends.
func awaitConn(ctx context.Context, h host.Host, pid peer.ID) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !reached(h, pid) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// turnedAway says whether a dial failed because every address it tried
// refused or reset the connection: nothing listens there any more, or the
// peer will not have this node (it removed it).
func turnedAway(err error) bool {
	var de *swarm.DialError
	if !errors.As(err, &de) || len(de.DialErrors) == 0 {
		return false
	}
	for _, te := range de.DialErrors {
		if !connRefused(te.Cause) {
			return false
		}
	}
	return true
}

// lost marks pid offline at once (see roster.cut). A node left with no
// connection to any member can hear no one: the peers it heard of only
// through others go offline with it (see alone).
func (n *Node) lost(pid peer.ID, boot string, seq uint64, why string) {
	if n.roster.cut(pid.String(), boot, seq) {
		n.log.Info("peer offline: "+why, "peer", pid.String())
	}
	n.alone()
}

// alone marks every online peer offline at once when this node has no
// connection, direct or relayed, to any member left: a removed member, or
// one whose network went, hears no heartbeat from anyone, whichever
// member it used to hear them through. They come back as cut peers do,
// with a later heartbeat or a new connection.
func (n *Node) alone() {
	h := n.getHost()
	if h == nil {
		return
	}
	for _, pid := range h.Network().Peers() {
		if reached(h, pid) && n.admitted(pid) {
			return
		}
	}
	n.mu.Lock()
	redialing := maps.Clone(n.redialing)
	n.mu.Unlock()
	for _, id := range n.roster.onlineIDs() {
		if pid, err := peer.Decode(id); err == nil && redialing[pid] {
			continue // its redial decides, and comes back here
		}
		boot, seq, ok := n.roster.lastBeat(id)
		if ok && n.roster.cut(id, boot, seq) {
			n.log.Info("peer offline: this node has no connection to any member", "peer", id)
		}
	}
}
