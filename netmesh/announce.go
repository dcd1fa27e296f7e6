package netmesh

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/mudler/edgevpn/pkg/blockchain"
	"github.com/mudler/edgevpn/pkg/hub"
)

// LedgerBucket is the EdgeVPN ledger bucket where every node keeps its
// NodeInfo, keyed by peer ID.
const LedgerBucket = "potluck.nodes"

// heartbeatVersion is the wire version of heartbeat.
const heartbeatVersion = 1

// heartbeat is published on the mesh's sealed gossip channel every
// Config.HeartbeatInterval. Receivers note the local time it arrived; the
// sender's clock is never consulted.
type heartbeat struct {
	V       int       `json:"v"`
	ID      string    `json:"id"`
	Boot    string    `json:"boot"`            // changes on every start
	Seq     uint64    `json:"seq"`             // increases within one boot
	EveryMS int64     `json:"every_ms"`        // sender's heartbeat interval
	Addrs   []string  `json:"addrs,omitempty"` // for a direct connection
	Info    *NodeInfo `json:"info,omitempty"`  // when changed, on request, and every fullEvery beats
}

// fullEvery: a heartbeat carries the sender's NodeInfo at least this often,
// besides whenever it changes or a new peer connects.
const fullEvery = 6

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

// heartbeatLoop announces this node, keeps its ledger entry current and judges
// the liveness of the others.
func (n *Node) heartbeatLoop(ctx context.Context) {
	every := n.cfg.HeartbeatInterval
	// Announcements asked for between heartbeats (info changes, new peers)
	// are rate limited so a busy node does not flood the mesh.
	minGap := min(every/4, 250*time.Millisecond)
	beat := time.NewTicker(every)
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
		n.sendHeartbeat(full)
		n.reconcileLedger()
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
			for _, id := range n.roster.sweep(time.Now(), n.cfg.RemoveAfter) {
				n.ledger.Delete(LedgerBucket, id)
			}
		}
	}
}

// sendHeartbeat publishes a heartbeat; it carries this node's info if full is
// set, the info changed since it was last sent, or fullEvery beats passed.
func (n *Node) sendHeartbeat(full bool) {
	n.self.mu.Lock()
	n.self.seq++
	hb := heartbeat{
		V:       heartbeatVersion,
		ID:      n.id.String(),
		Boot:    n.boot,
		Seq:     n.self.seq,
		EveryMS: n.cfg.HeartbeatInterval.Milliseconds(),
	}
	raw, _ := json.Marshal(n.self.info)
	n.self.sinceFull++
	if full || n.self.sinceFull >= fullEvery || string(raw) != string(n.self.sentInfo) {
		info := n.self.info.Clone()
		hb.Info = &info
		n.self.sentInfo, n.self.sinceFull = raw, 0
	}
	n.self.mu.Unlock()
	if h := n.getHost(); h != nil {
		for _, a := range h.Addrs() {
			hb.Addrs = append(hb.Addrs, a.String())
		}
	}
	b, err := json.Marshal(hb)
	if err != nil {
		n.log.Error("encode heartbeat", "err", err)
		return
	}
	if err := n.ev.PublishMessage(&hub.Message{Message: string(b)}); err != nil {
		n.log.Debug("publish heartbeat", "err", err)
	}
}

// handleHeartbeat is EdgeVPN's handler for the sealed generic channel.
func (n *Node) handleHeartbeat(_ *blockchain.Ledger, m *hub.Message, _ chan *hub.Message) error {
	now := time.Now()
	var hb heartbeat
	if err := json.Unmarshal([]byte(m.Message), &hb); err != nil || hb.V < heartbeatVersion {
		n.log.Debug("ignored a malformed heartbeat", "from", m.SenderID)
		return nil
	}
	pid, err := peer.Decode(hb.ID)
	if err != nil || pid == n.id {
		return nil
	}
	var raw []byte
	if hb.Info != nil {
		hb.Info.PeerID = hb.ID
		if raw, err = json.Marshal(hb.Info); err != nil {
			return nil
		}
	} else if !n.roster.known(hb.ID) {
		// A peer first heard without its info: take it from the ledger
		// until its next full heartbeat.
		if info, ok := n.LedgerNodes()[hb.ID]; ok {
			info.PeerID = hb.ID
			hb.Info = &info
			raw, _ = json.Marshal(info)
		}
	}
	if n.roster.observe(hb, raw, now) {
		// The newcomer may have missed our last full heartbeat: send one.
		// As every node does the same, a joiner learns everyone's info
		// at once, and everyone learns its info from its own replies.
		n.announceNow()
	}
	n.connectPeer(pid, hb.Addrs)
	return nil
}

// reconcileLedger rewrites this node's ledger entry when it is missing or
// stale (a concurrent write by another node can replace the whole block).
func (n *Node) reconcileLedger() {
	info := n.Info()
	want, err := json.Marshal(info)
	if err != nil {
		return
	}
	if v, ok := n.ledger.GetKey(LedgerBucket, info.PeerID); ok && string(v) == string(want) {
		return
	}
	n.ledger.Add(LedgerBucket, map[string]any{info.PeerID: info})
}

// LedgerNodes returns the NodeInfo entries in the mesh's shared ledger, which
// may include nodes this node has never heard from directly. Liveness is not
// judged here; see Peers.
func (n *Node) LedgerNodes() map[string]NodeInfo {
	n.mu.Lock()
	l := n.ledger
	n.mu.Unlock()
	out := map[string]NodeInfo{}
	if l == nil {
		return out
	}
	for id, v := range l.CurrentData()[LedgerBucket] {
		var info NodeInfo
		if err := v.Unmarshal(&info); err == nil {
			out[id] = info
		}
	}
	return out
}

// pingEvery is the RTT measurement period in heartbeats.
const pingEvery = 3

// pingLoop measures the round trip to every online peer over its direct
// connection with libp2p's ping protocol.
func (n *Node) pingLoop(ctx context.Context) {
	h := n.getHost()
	t := time.NewTicker(min(max(pingEvery*n.cfg.HeartbeatInterval, 100*time.Millisecond), time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, id := range n.roster.onlineIDs() {
			pid, err := peer.Decode(id)
			if err != nil || h.Network().Connectedness(pid) != network.Connected {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
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
