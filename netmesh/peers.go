package netmesh

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// NodeInfo is what a node announces about itself to the mesh.
type NodeInfo struct {
	PeerID        string `json:"peer_id"`
	Name          string `json:"name"`
	Version       string `json:"version,omitempty"`
	Mode          string `json:"mode,omitempty"`           // off, worker or server
	MemoryOffered uint64 `json:"memory_offered,omitempty"` // bytes
	// LendTo are the peer ids of the members the node's shard worker
	// serves, its own among them; empty: every member.
	LendTo []string `json:"lend_to,omitempty"`
	// Hardware is an opaque summary owned by the hardware package.
	Hardware json.RawMessage `json:"hardware,omitempty"`
	// Engine is an opaque description of the node's llama.cpp, owned by
	// the application.
	Engine json.RawMessage `json:"engine,omitempty"`
	// Devices is an opaque list of the devices the node uses and lends,
	// owned by the application.
	Devices  json.RawMessage        `json:"devices,omitempty"`
	Services map[string]ServiceInfo `json:"services,omitempty"`
	Models   []string               `json:"models,omitempty"`
	// Files is an opaque list of the model files the node lets peers
	// copy, owned by the application.
	Files    json.RawMessage `json:"files,omitempty"`
	InFlight int             `json:"in_flight,omitempty"` // requests being served
	// SealKey is the node's HPKE public key (base64): see SealTo.
	SealKey string `json:"seal_key,omitempty"`
}

// ServiceInfo describes one exposed service.
type ServiceInfo struct {
	Version string `json:"version,omitempty"` // protocol version, e.g. llama.cpp RPC 8.0.0
}

// Clone returns a deep copy.
func (i NodeInfo) Clone() NodeInfo {
	i.Hardware = bytes.Clone(i.Hardware)
	i.Engine = bytes.Clone(i.Engine)
	i.Devices = bytes.Clone(i.Devices)
	i.Files = bytes.Clone(i.Files)
	i.Services = maps.Clone(i.Services)
	i.Models = slices.Clone(i.Models)
	i.LendTo = slices.Clone(i.LendTo)
	return i
}

// Peer is another node as this node sees it.
type Peer struct {
	NodeInfo
	// Online is false once about three heartbeats were missed, or at once
	// when this node's last connection to the peer closed and a prompt
	// redial failed.
	Online bool
	// LastSeen is the local time the last heartbeat arrived.
	LastSeen time.Time
	// RTT is the last measured round trip over a direct connection; zero if
	// none is known.
	RTT time.Duration
	// MinRTT is the least of the last few round trips: the path's own
	// delay, without the queueing of a busy moment (a load filling the
	// link, a peer starting up).
	MinRTT time.Duration
	// Addrs are the addresses the peer last announced, signed, for a
	// direct connection.
	Addrs []string
	// Conn says how this node reaches the peer now: ConnDirect,
	// ConnHolePunched, ConnRelayed, ConnRelayLost, or ConnNone (only
	// through other members' gossip).
	Conn string
	// Transport is the transport of that connection ("tcp", "tcp via
	// relay"); RemoteAddr its remote address.
	Transport  string
	RemoteAddr string
}

// MarshalJSON renders a Peer for the node API: NodeInfo plus online,
// last_seen_ms (Unix milliseconds, local clock) and rtt_ms.
func (p Peer) MarshalJSON() ([]byte, error) {
	type wire struct {
		NodeInfo
		Online     bool    `json:"online"`
		LastSeenMS int64   `json:"last_seen_ms"`
		RTTMS      float64 `json:"rtt_ms"`
		Conn       string  `json:"conn,omitempty"`
		Transport  string  `json:"transport,omitempty"`
		RemoteAddr string  `json:"remote_addr,omitempty"`
	}
	return json.Marshal(wire{p.NodeInfo, p.Online, p.LastSeen.UnixMilli(), float64(p.RTT) / float64(time.Millisecond), p.Conn, p.Transport, p.RemoteAddr})
}

// EventType says what happened to a peer.
type EventType int

// Peer events.
const (
	PeerJoined  EventType = iota + 1 // first heartbeat, or back after being offline
	PeerUpdated                      // announced info changed
	PeerOffline                      // missed about three heartbeats, or its last connection closed and could not be reopened
	PeerRemoved                      // offline for Config.RemoveAfter
)

func (t EventType) String() string {
	switch t {
	case PeerJoined:
		return "joined"
	case PeerUpdated:
		return "updated"
	case PeerOffline:
		return "offline"
	case PeerRemoved:
		return "removed"
	}
	return "unknown"
}

// PeerEvent is delivered to subscribers.
type PeerEvent struct {
	Type EventType
	Peer Peer
}

// subscriberBuffer is how many events a slow subscriber may fall behind before
// the oldest are dropped.
const subscriberBuffer = 64

type subscriber struct {
	ch chan PeerEvent
}

type peerState struct {
	info     NodeInfo
	raw      []byte // info as announced, to detect changes
	boot     string
	start    int64 // the boot's start on the peer's clock
	seq      uint64
	addrs    []string
	every    time.Duration // the peer's own heartbeat interval
	online   bool
	lastSeen time.Time // local clock, monotonic reading included
	rtt      time.Duration
	rtts     []time.Duration // the last rttSamples round trips, oldest first
	// cut is set while the peer is offline because its last connection
	// closed and a redial failed; cutBoot and cutSeq were its last
	// heartbeat then. Only a sign of life after that brings it back
	// (see roster.cut).
	cut     bool
	cutBoot string
	cutSeq  uint64
}

// rttSamples is how many round trips MinRTT is the least of.
const rttSamples = 5

// roster is the table of peers, judged only by the local clock.
type roster struct {
	defaultEvery time.Duration

	mu     sync.Mutex
	peers  map[string]*peerState
	subs   map[*subscriber]struct{}
	closed bool
	// departed holds the members that said they were leaving (leave.go),
	// so that their last heartbeats, handed on late by gossip, do not
	// bring them back.
	departed map[string]departure
}

type departure struct {
	boot string
	seq  uint64
	at   time.Time
}

// departedFor is how long a leaving notice is remembered: far longer than
// gossip keeps a message.
const departedFor = 10 * time.Minute

func newRoster(every time.Duration) *roster {
	return &roster{defaultEvery: every, peers: map[string]*peerState{}, subs: map[*subscriber]struct{}{}}
}

// observe records a heartbeat, already checked to be signed by its peer,
// that arrived at now. A heartbeat that says nothing new (a replay, or one
// from an older run of the peer) changes nothing: fresh is false. joined
// reports whether the peer is new, back from offline or restarted: it
// should hear this node's full info.
func (r *roster) observe(hb heartbeat, raw []byte, now time.Time) (fresh, joined bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false, false
	}
	every := time.Duration(hb.EveryMS) * time.Millisecond
	if every <= 0 {
		every = r.defaultEvery
	}
	every = min(max(every, 10*time.Millisecond), 10*time.Minute)

	if d, ok := r.departed[hb.ID]; ok && hb.Boot == d.boot && hb.Seq <= d.seq {
		return false, false // sent before it said it was leaving
	}
	p, known := r.peers[hb.ID]
	restarted := known && hb.Boot != p.boot
	if known {
		switch {
		case hb.Boot == p.boot && hb.Seq <= p.seq:
			return false, false // seen already
		case hb.Boot != p.boot && hb.Start <= p.start:
			return false, false // an older run of the peer
		}
	} else {
		p = &peerState{}
		r.peers[hb.ID] = p
	}
	if known && p.cut && !p.afterCut(hb) {
		// Perhaps sent before the connection closed, and relayed by
		// other members since: recorded, but no sign of life.
		p.seq = hb.Seq
		if hb.Info != nil && !bytes.Equal(p.raw, raw) {
			p.info, p.raw = *hb.Info, raw
		}
		return true, false
	}
	wasOnline := p.online
	p.cut = false
	p.lastSeen = now
	p.online = true
	p.every = every
	p.boot, p.start, p.seq = hb.Boot, hb.Start, hb.Seq
	if len(hb.Addrs) > 0 {
		p.addrs = slices.Clone(hb.Addrs)
	}
	changed := false
	if hb.Info != nil && !bytes.Equal(p.raw, raw) {
		p.info, p.raw = *hb.Info, raw
		changed = known // a new peer is "joined", not "updated"
	}
	if p.info.PeerID == "" {
		p.info.PeerID = hb.ID
	}
	switch {
	case !wasOnline:
		r.emit(PeerJoined, p)
	case changed:
		r.emit(PeerUpdated, p)
	}
	// A peer that restarted has forgotten everyone: it needs full
	// heartbeats as much as a newcomer.
	return true, !wasOnline || restarted
}

// left takes a member's word that it is leaving after heartbeat seq of its
// run boot: it is offline at once, and no heartbeat of that run up to seq
// brings it back. It reports whether the member was online.
func (r *roster) left(id, boot string, seq uint64, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	if r.departed == nil {
		r.departed = map[string]departure{}
	}
	for k, d := range r.departed {
		if now.Sub(d.at) > departedFor {
			delete(r.departed, k)
		}
	}
	r.departed[id] = departure{boot: boot, seq: seq, at: now}
	p, ok := r.peers[id]
	if !ok || !p.online || p.boot != boot {
		return false
	}
	r.markCut(p, boot, seq)
	return true
}

// remove forgets a peer at once (it was blocked).
func (r *roster) remove(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.peers[id]
	if !ok {
		return
	}
	delete(r.peers, id)
	p.online = false
	r.emit(PeerRemoved, p)
}

// sweep marks peers offline and removes long-gone ones; it returns the IDs it
// removed.
func (r *roster) sweep(now time.Time, removeAfter time.Duration) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var removed []string
	for id, p := range r.peers {
		age := now.Sub(p.lastSeen)
		if p.online && age > missedHeartbeats*p.every+p.every/2 {
			p.online = false
			r.emit(PeerOffline, p)
		}
		if !p.online && age > removeAfter {
			delete(r.peers, id)
			r.emit(PeerRemoved, p)
			removed = append(removed, id)
		}
	}
	return removed
}

func (r *roster) known(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.peers[id]
	return ok
}

// pinged records a ping answered at now; it extends the life of an online
// peer but does not bring an offline one back (only a heartbeat does).
func (r *roster) pinged(id string, rtt time.Duration, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.peers[id]; ok {
		p.rtt = rtt
		p.rtts = append(p.rtts, rtt)
		if len(p.rtts) > rttSamples {
			p.rtts = p.rtts[1:]
		}
		if p.online && now.After(p.lastSeen) {
			p.lastSeen = now
		}
	}
}

// hasInfo says whether a heartbeat of peer id carried its info.
func (r *roster) hasInfo(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.peers[id]
	return ok && p.raw != nil
}

// missingInfo lists up to max online peers whose info no heartbeat has
// carried yet.
func (r *roster) missingInfo(max int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for id, p := range r.peers {
		if p.online && p.raw == nil && len(ids) < max {
			ids = append(ids, id)
		}
	}
	return ids
}

func (r *roster) onlineIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for id, p := range r.peers {
		if p.online {
			ids = append(ids, id)
		}
	}
	return ids
}

func (p *peerState) snapshot() Peer {
	var least time.Duration
	if len(p.rtts) > 0 {
		least = slices.Min(p.rtts)
	}
	return Peer{NodeInfo: p.info.Clone(), Online: p.online, LastSeen: p.lastSeen, RTT: p.rtt, MinRTT: least, Addrs: slices.Clone(p.addrs)}
}

func (r *roster) list() []Peer {
	r.mu.Lock()
	out := make([]Peer, 0, len(r.peers))
	for _, p := range r.peers {
		out = append(out, p.snapshot())
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Peer) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.PeerID, b.PeerID)
	})
	return out
}

func (r *roster) get(id string) (Peer, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.peers[id]
	if !ok {
		return Peer{}, false
	}
	return p.snapshot(), true
}

// emit delivers an event without ever blocking: a full subscriber loses its
// oldest event. Called with r.mu held.
func (r *roster) emit(t EventType, p *peerState) {
	ev := PeerEvent{Type: t, Peer: p.snapshot()}
	for s := range r.subs {
		select {
		case s.ch <- ev:
			continue
		default:
		}
		select {
		case <-s.ch:
		default:
		}
		select {
		case s.ch <- ev:
		default:
		}
	}
}

func (r *roster) subscribe() (<-chan PeerEvent, func()) {
	s := &subscriber{ch: make(chan PeerEvent, subscriberBuffer)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		close(s.ch)
		return s.ch, func() {}
	}
	r.subs[s] = struct{}{}
	return s.ch, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, ok := r.subs[s]; ok {
			delete(r.subs, s)
			close(s.ch)
		}
	}
}

// close ends every subscription.
func (r *roster) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for s := range r.subs {
		delete(r.subs, s)
		close(s.ch)
	}
}

// Peers lists the other nodes this node has heard from, online or not, sorted
// by name.
func (n *Node) Peers() []Peer {
	ps := n.roster.list()
	for i := range ps {
		n.withConn(&ps[i])
	}
	return ps
}

// Peer returns one peer by ID.
func (n *Node) Peer(id string) (Peer, bool) {
	p, ok := n.roster.get(id)
	if ok {
		n.withConn(&p)
	}
	return p, ok
}

// withConn fills in how this node reaches p.
func (n *Node) withConn(p *Peer) {
	h := n.getHost()
	pid, err := peer.Decode(p.PeerID)
	if h == nil || err != nil {
		return
	}
	p.Conn, p.Transport, p.RemoteAddr = n.connInfo(h, pid)
}

// Subscribe returns a channel of peer events and a function that ends the
// subscription. Events never block the node: a subscriber that falls more than
// 64 events behind loses the oldest ones (re-read Peers to resynchronise). The
// channel is closed when the subscription ends or the node stops.
func (n *Node) Subscribe() (<-chan PeerEvent, func()) { return n.roster.subscribe() }
