package netmesh

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/mudler/edgevpn/pkg/blockchain"
	"github.com/mudler/edgevpn/pkg/hub"
)

// heartbeatVersion is the wire version of heartbeat. Version 2 heartbeats
// travel in signed envelopes; earlier ones are not accepted.
const heartbeatVersion = 2

// heartbeat is published on the mesh's sealed gossip channel every
// Config.HeartbeatInterval, signed by the sender's identity key. Receivers
// note the local time it arrived; the sender's clock is never compared with
// theirs.
type heartbeat struct {
	V       int       `json:"v"`
	ID      string    `json:"id"`
	Boot    string    `json:"boot"`            // changes on every start
	Start   int64     `json:"start"`           // when this boot began, on the sender's clock (orders its own boots)
	Seq     uint64    `json:"seq"`             // increases within one boot
	EveryMS int64     `json:"every_ms"`        // sender's heartbeat interval
	Addrs   []string  `json:"addrs,omitempty"` // for a direct connection; with Info only
	Info    *NodeInfo `json:"info,omitempty"`  // when changed, on request, and every fullEvery beats
	// Want lists the online peers whose info the sender has not had yet:
	// each of them answers with a full heartbeat at once. A full
	// heartbeat published before the gossip path to a joiner exists never
	// reaches it, and without asking, the joiner would wait fullEvery
	// beats to learn who its peers are.
	Want []string `json:"want,omitempty"`
}

// maxWant bounds a heartbeat's Want list; the rest are asked for on later
// beats.
const maxWant = 32

// fullEvery: a heartbeat carries the sender's NodeInfo at least this often,
// besides whenever it changes or a new peer connects.
const fullEvery = 12

type selfInfo struct {
	mu        sync.Mutex
	info      NodeInfo
	seq       uint64
	sentInfo  []byte // info as last sent in a heartbeat
	sinceFull int    // heartbeats since the last that carried info
}

// Info returns what this node announces.
func (n *Node) Info() NodeInfo {
	n.self.mu.Lock()
	defer n.self.mu.Unlock()
	return n.self.info.Clone()
}

// SetInfo edits what this node announces and, if anything changed, announces
// it promptly. f gets a private copy; PeerID cannot be changed.
func (n *Node) SetInfo(f func(*NodeInfo)) {
	n.self.mu.Lock()
	next := n.self.info.Clone()
	f(&next)
	next.PeerID = n.id.String()
	next.SealKey = n.self.info.SealKey
	before, _ := json.Marshal(n.self.info)
	after, _ := json.Marshal(next)
	n.self.info = next
	n.self.mu.Unlock()
	if string(before) != string(after) {
		n.announceNow()
	}
}

func (n *Node) announceNow() {
	select {
	case n.announce <- struct{}{}:
	default:
	}
}

// heartbeatLoop announces this node and judges
// the liveness of the others.
func (n *Node) heartbeatLoop(ctx context.Context) {
	every := n.cfg.HeartbeatInterval
	// Announcements asked for between heartbeats (info changes, new peers)
	// are rate limited so a busy node does not flood the mesh.
	minGap := min(every/4, 250*time.Millisecond)
	// The beat's pace follows the mesh's size (paceEvery). Each heartbeat
	// says how long until the next, so a node slows down only after
	// telling its peers.
	beat := time.NewTimer(every)
	defer beat.Stop()
	sweep := time.NewTicker(max(every/4, 5*time.Millisecond))
	defer sweep.Stop()
	var (
		last    time.Time
		pending *time.Timer
		due     <-chan time.Time
	)
	defer func() {
		if pending != nil {
			pending.Stop()
		}
	}()
	send := func(full bool) {
		last = time.Now()
		pace := n.sendHeartbeat(full)
		beat.Reset(pace)
	}
	send(true)
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			send(false)
		case <-n.announce:
			if wait := minGap - time.Since(last); wait > 0 {
				if due == nil {
					pending = time.NewTimer(wait)
					due = pending.C
				}
				continue
			}
			send(true)
		case <-due:
			due, pending = nil, nil
			send(true)
		case <-sweep.C:
			n.roster.sweep(time.Now(), n.cfg.RemoveAfter)
		}
	}
}

// sendHeartbeat publishes a heartbeat; it carries this node's info if full is
// set, the info changed since it was last sent, or fullEvery beats passed.
// It returns the time until the next heartbeat, which it announced.
func (n *Node) sendHeartbeat(full bool) time.Duration {
	pace := n.pace()
	n.self.mu.Lock()
	n.self.seq++
	hb := heartbeat{
		V:     heartbeatVersion,
		ID:    n.id.String(),
		Boot:  n.boot,
		Start: n.started,
		Seq:   n.self.seq,
		Want:  n.roster.missingInfo(maxWant),
	}
	raw, _ := json.Marshal(n.self.info)
	n.self.sinceFull++
	if full || n.self.sinceFull >= fullEvery || string(raw) != string(n.self.sentInfo) {
		info := n.self.info.Clone()
		hb.Info = &info
		n.self.sentInfo, n.self.sinceFull = raw, 0
	}
	n.self.mu.Unlock()
	if h := n.getHost(); h != nil && (hb.Info != nil || n.missingDirect(h)) {
		// Addresses are for peers that have no direct connection to
		// this node yet: they travel with the info, and with every
		// heartbeat while some peer is reached only through others.
		for _, a := range h.Addrs() {
			hb.Addrs = append(hb.Addrs, a.String())
		}
	}
	if hb.Info == nil && len(hb.Want) == 0 && len(hb.Addrs) == 0 && pace > n.cfg.HeartbeatInterval {
		// An idle member of a large mesh with a direct connection to
		// every online peer (else Addrs would be set): see idleStretch.
		pace *= idleStretch
	}
	hb.EveryMS = pace.Milliseconds()
	n.every.Store(int64(pace))
	b, err := json.Marshal(hb)
	if err != nil {
		n.log.Error("encode heartbeat", "err", err)
		return pace
	}
	if err := n.publish(codecHeartbeat, b); err != nil {
		n.log.Debug("publish heartbeat", "err", err)
	}
	return pace
}

// pace is the heartbeat interval for the mesh's present size.
func (n *Node) pace() time.Duration {
	return paceEvery(n.cfg.HeartbeatInterval, len(n.roster.onlineIDs()))
}

// missingDirect says whether some online peer has no direct connection to
// this node.
func (n *Node) missingDirect(h host.Host) bool {
	for _, id := range n.roster.onlineIDs() {
		if pid, err := peer.Decode(id); err == nil && h.Network().Connectedness(pid) != network.Connected {
			return true
		}
	}
	return false
}

// publish signs payload and puts it on the mesh's sealed channel.
func (n *Node) publish(codec, payload []byte) error {
	msg, err := seal(n.priv, codec, payload)
	if err != nil {
		return err
	}
	return n.ev.PublishMessage(&hub.Message{Message: msg})
}

// handleMessage is EdgeVPN's handler for the sealed generic channel. Every
// message must be signed by the member it speaks for: anything else is
// dropped and counted, and changes nothing.
func (n *Node) handleMessage(_ *blockchain.Ledger, m *hub.Message, _ chan *hub.Message) error {
	if tap := n.cfg.Tap; tap != nil {
		tap(m.Message)
	}
	signer, codec, payload, err := unseal(m.Message)
	if err != nil {
		n.rejected("bad signature", m.SenderID, "")
		return nil
	}
	if signer == n.id {
		return nil
	}
	if !n.admitted(signer) {
		return nil
	}
	switch {
	case bytes.Equal(codec, codecHeartbeat):
		n.handleHeartbeat(signer, payload)
	case bytes.Equal(codec, codecNotice):
		if f := n.cfg.OnNotice; f != nil {
			f(signer.String(), payload)
		}
	case bytes.Equal(codec, codecLeaving):
		n.handleLeaving(signer.String(), payload)
	default:
		n.log.Debug("ignored a message of an unknown type", "from", signer.String())
	}
	return nil
}

// rejected counts a message that failed its checks.
func (n *Node) rejected(why, via, claimed string) {
	n.stats.rejected.Add(1)
	n.log.Debug("dropped a mesh message", "why", why, "via", via, "claimed", claimed)
}

// Rejected is how many mesh messages failed their signature check, or were
// signed by one member but spoke for another, since the node started.
func (n *Node) Rejected() uint64 { return n.stats.rejected.Load() }

// admitted says whether a peer may take part (Config.Admit).
func (n *Node) admitted(id peer.ID) bool {
	if n.isBlocked(id) {
		return false
	}
	return n.cfg.Admit == nil || n.cfg.Admit(id.String())
}

// handleHeartbeat takes a heartbeat signed by signer.
func (n *Node) handleHeartbeat(signer peer.ID, payload []byte) {
	now := time.Now()
	var hb heartbeat
	if err := json.Unmarshal(payload, &hb); err != nil || hb.V < heartbeatVersion {
		n.log.Debug("ignored a malformed heartbeat", "from", signer.String())
		return
	}
	if hb.ID != signer.String() {
		n.rejected("signed by another member", signer.String(), hb.ID)
		return
	}
	var raw []byte
	if hb.Info != nil {
		hb.Info.PeerID = hb.ID
		var err error
		if raw, err = json.Marshal(hb.Info); err != nil {
			return
		}
	}
	fresh, joined := n.roster.observe(hb, raw, now)
	if !fresh {
		return // a replay, or an older run of the peer
	}
	switch {
	case slices.Contains(hb.Want, n.id.String()):
		// The sender has not had this node's info: it missed the full
		// heartbeats sent so far.
		n.announceNow()
	case hb.Info == nil && !n.roster.hasInfo(hb.ID):
		// Ask the sender for its info now rather than on the next beat.
		n.announceNow()
	}
	if joined {
		// The newcomer (or a restarted peer) may have missed our last
		// full heartbeat: send one. As every node does the same, a joiner
		// learns everyone's info at once, and everyone learns its info
		// from its own replies.
		n.announceNow()
	}
	n.connectPeer(signer, hb.Addrs)
}

// pingEvery is the RTT measurement period in heartbeats, and
// maxPingPeriod its bound.
const (
	pingEvery     = 3
	maxPingPeriod = 5 * time.Minute
)

// pingLoop measures the round trip to every online peer over its direct
// connection with libp2p's ping protocol.
func (n *Node) pingLoop(ctx context.Context) {
	h := n.getHost()
	period := func() time.Duration {
		every := time.Duration(n.every.Load())
		if every <= 0 {
			every = n.pace()
		}
		return min(max(pingEvery*every, 100*time.Millisecond), maxPingPeriod)
	}
	t := time.NewTimer(period())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			t.Reset(period())
		}
		for _, id := range n.roster.onlineIDs() {
			pid, err := peer.Decode(id)
			if err != nil || !reached(h, pid) {
				continue
			}
			pctx, cancel := context.WithTimeout(limitedOK(ctx), 5*time.Second)
			res, ok := <-ping.Ping(pctx, h, pid)
			cancel()
			if ok && res.Error == nil {
				// A ping answered now is as good as a heartbeat: it keeps
				// a directly connected peer alive while gossip hiccups
				// (EdgeVPN's room changes on a wall-clock schedule).
				n.roster.pinged(id, res.RTT, time.Now())
			}
		}
	}
}
