package netmesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/potluck-gpu/potluck/internal/atomicfile"
	"github.com/potluck-gpu/potluck/internal/ctxtime"
)

// The address book: every member this node has met, with the addresses it
// announced and the one it was last reached at, kept in DataDir so that a
// restart rejoins the network without the member whose invite was used.

const (
	bookFile      = "peers.json"
	bookMaxPeers  = 64
	bookMaxAddrs  = 16
	bookForget    = 30 * 24 * time.Hour // members not seen for this long are dropped
	bookSaveEvery = 30 * time.Second
	rejoinMaxWait = time.Minute
	inviteMaxPeer = 6 // other members whose addresses an invite carries
)

type bookEntry struct {
	Name  string    `json:"name,omitempty"`
	Addrs []string  `json:"addrs"`
	Seen  time.Time `json:"seen"`
}

type bookDoc struct {
	Network string               `json:"network"`
	Peers   map[string]bookEntry `json:"peers"`
}

type addrBook struct {
	path    string // empty: not kept (no DataDir)
	network string

	mu    sync.Mutex
	peers map[string]bookEntry
	dirty bool
}

// loadBook reads the address book of network from dir; a missing,
// unreadable or other network's book starts empty. A damaged one is set
// aside and its backup copy used, or none; damage
// says what happened ("" when nothing did).
func loadBook(dir, network string) (b *addrBook, damage string) {
	b = &addrBook{network: network, peers: map[string]bookEntry{}}
	if dir == "" {
		return b, ""
	}
	b.path = filepath.Join(dir, bookFile)
	valid := func(raw []byte) error {
		var doc bookDoc
		return json.Unmarshal(raw, &doc)
	}
	raw, d, err := atomicfile.ReadValid(b.path, valid)
	if err != nil || raw == nil && d == nil {
		return b, ""
	}
	if d != nil {
		damage = d.Error()
		if !d.FromBackup {
			damage += ": the members met are found again through the invite and the network"
		}
		if aside, err := atomicfile.SetAside(b.path); err == nil {
			damage += "; the damaged file is kept as " + aside
		}
		b.dirty = true // the next save writes the file again
		if raw == nil {
			return b, damage
		}
	}
	var doc bookDoc
	if json.Unmarshal(raw, &doc) != nil || doc.Network != network {
		return b, damage
	}
	for id, e := range doc.Peers {
		if _, err := peer.Decode(id); err == nil && time.Since(e.Seen) < bookForget {
			b.peers[id] = e
		}
	}
	return b, damage
}

// note records that a member was seen with addrs.
func (b *addrBook) note(id, name string, addrs []string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.peers[id]
	merged := slices.Clone(addrs)
	for _, a := range e.Addrs {
		if !slices.Contains(merged, a) {
			merged = append(merged, a)
		}
	}
	if len(merged) > bookMaxAddrs {
		merged = merged[:bookMaxAddrs]
	}
	if name == "" {
		name = e.Name
	}
	changed := e.Name != name || !slices.Equal(e.Addrs, merged) || now.Sub(e.Seen) > time.Hour
	e.Name, e.Addrs = name, merged
	if changed {
		e.Seen = now
		b.dirty = true
	}
	b.peers[id] = e
	if len(b.peers) > bookMaxPeers { // forget the longest unseen
		var oldest string
		for pid, pe := range b.peers {
			if oldest == "" || pe.Seen.Before(b.peers[oldest].Seen) {
				oldest = pid
			}
		}
		delete(b.peers, oldest)
	}
}

// forget drops a member (removed from the network).
func (b *addrBook) forget(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.peers[id]; ok {
		delete(b.peers, id)
		b.dirty = true
	}
}

// entries returns the book, most recently seen first.
func (b *addrBook) entries() []peer.AddrInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	ids := make([]string, 0, len(b.peers))
	for id := range b.peers {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(x, y string) int { return b.peers[y].Seen.Compare(b.peers[x].Seen) })
	var out []peer.AddrInfo
	for _, id := range ids {
		pid, _ := peer.Decode(id)
		pi := peer.AddrInfo{ID: pid}
		for _, a := range b.peers[id].Addrs {
			if m, err := ma.NewMultiaddr(a); err == nil {
				pi.Addrs = append(pi.Addrs, m)
			}
		}
		out = append(out, pi)
	}
	return out
}

// save writes the book if it changed (0600, atomically).
func (b *addrBook) save() error {
	b.mu.Lock()
	if b.path == "" || !b.dirty {
		b.mu.Unlock()
		return nil
	}
	raw, err := json.MarshalIndent(bookDoc{Network: b.network, Peers: b.peers}, "", "  ")
	b.dirty = false
	b.mu.Unlock()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteKeep(b.path, raw, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// knownAddrInfos are the peers to dial when this node has no connection:
// the invite's addresses, then the address book. It is also the members'
// DHT's bootstrap list.
func (n *Node) knownAddrInfos() []peer.AddrInfo {
	byID := map[peer.ID]*peer.AddrInfo{}
	var order []peer.ID
	add := func(pi peer.AddrInfo) {
		if pi.ID == n.id || !n.admitted(pi.ID) {
			return
		}
		if e, ok := byID[pi.ID]; ok {
			for _, a := range pi.Addrs {
				if !slices.ContainsFunc(e.Addrs, a.Equal) {
					e.Addrs = append(e.Addrs, a)
				}
			}
			return
		}
		cp := pi
		byID[pi.ID] = &cp
		order = append(order, pi.ID)
	}
	for _, a := range n.tok.Addrs() {
		if pi, err := peer.AddrInfoFromString(a); err == nil {
			add(*pi)
		}
	}
	for _, pi := range n.book.entries() {
		add(pi)
	}
	out := make([]peer.AddrInfo, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	return out
}

// rejoinLoop dials the known members this node has no connection to and
// does not hear of, with capped backoff, and keeps the address book up to
// date. That is all of them when it has no connection at all, and else
// the ones gone missing: members behind NATs that still have each other
// would otherwise never dial a public member that restarted, which cannot
// dial them, and the network would stay split in two.
func (n *Node) rejoinLoop(ctx context.Context, h host.Host) {
	wait := 500 * time.Millisecond
	lastSave := time.Now()
	var missedBefore map[peer.ID]bool
	var inFlight sync.Map // peer.ID -> true while a dial to it runs
	for {
		missing := n.missingMembers(h)
		for _, pi := range missing {
			if !missedBefore[pi.ID] {
				wait = 500 * time.Millisecond // a member newly gone: look for it soon
				break
			}
		}
		missedBefore = map[peer.ID]bool{}
		for _, pi := range missing {
			missedBefore[pi.ID] = true
		}
		next := 5 * time.Second
		if len(missing) > 0 {
			n.dialEach(ctx, h, missing, &inFlight)
			// Jittered: two members that restarted together and dial
			// each other on the same schedule would open one TCP
			// connection from both ends through a NAT (a simultaneous
			// open), on which both handshakes fail, round after round.
			next = wait/2 + rand.N(wait)
			wait = min(wait*2, rejoinMaxWait)
		}
		n.noteMembers(h)
		if time.Since(lastSave) >= bookSaveEvery {
			if err := n.book.save(); err != nil {
				n.log.Warn("cannot save the members' addresses", "err", err)
			}
			lastSave = time.Now()
		}
		if !ctxtime.Sleep(ctx, next) {
			return
		}
	}
}

// missingMembers are the known members to dial: every one when this node
// has no connection, and otherwise those it has no connection to and does
// not hear of through others (those it hears of are dialed as their
// heartbeats arrive).
func (n *Node) missingMembers(h host.Host) []peer.AddrInfo {
	known := n.knownAddrInfos()
	if len(h.Network().Peers()) == 0 {
		return known
	}
	var out []peer.AddrInfo
	for _, pi := range known {
		if pi.ID == n.id || h.Network().Connectedness(pi.ID) != network.NotConnected || !n.admitted(pi.ID) {
			continue
		}
		if p, ok := n.roster.get(pi.ID.String()); ok && p.Online {
			continue
		}
		out = append(out, pi)
	}
	return out
}

// dialEach starts a dial to each of peers that has none in flight, each
// for at most 10 seconds, and does not wait for them: a member that
// refused a dial while it restarted is dialed again on the next round,
// not once the dials to addresses that never answer have timed out.
func (n *Node) dialEach(ctx context.Context, h host.Host, peers []peer.AddrInfo, inFlight *sync.Map) {
	started := 0
	for _, pi := range peers {
		if started == 16 {
			return // the rest on the next round
		}
		if h.Network().Connectedness(pi.ID) != network.NotConnected {
			continue
		}
		if _, busy := inFlight.LoadOrStore(pi.ID, true); busy {
			continue
		}
		started++
		if !n.spawn(func() {
			defer inFlight.Delete(pi.ID)
			dctx, cancel := context.WithTimeout(limitedOK(ctx), 10*time.Second)
			defer cancel()
			clearBackoff(h, pi.ID)
			if err := h.Connect(dctx, pi); err != nil && ctx.Err() == nil {
				n.log.Debug("known member unreachable", "peer", pi.ID.String(), "err", err)
			}
		}) {
			inFlight.Delete(pi.ID)
		}
	}
}

// dialAll dials peers at once, each for at most 10 seconds.
func (n *Node) dialAll(ctx context.Context, h host.Host, peers []peer.AddrInfo) {
	var wg sync.WaitGroup
	for _, pi := range peers[:min(len(peers), 16)] {
		if h.Network().Connectedness(pi.ID) != network.NotConnected {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(limitedOK(ctx), 10*time.Second)
			defer cancel()
			clearBackoff(h, pi.ID)
			if err := h.Connect(dctx, pi); err != nil && ctx.Err() == nil {
				n.log.Debug("known member unreachable", "peer", pi.ID.String(), "err", err)
			}
		}()
	}
	wg.Wait()
}

// noteMembers writes the online members' announced addresses, and the
// address each is connected at, into the address book.
func (n *Node) noteMembers(h host.Host) {
	now := time.Now()
	for _, p := range n.roster.list() {
		if !p.Online {
			continue
		}
		pid, err := peer.Decode(p.PeerID)
		if err != nil || !n.admitted(pid) {
			continue
		}
		var addrs []string
		for _, c := range h.Network().ConnsToPeer(pid) {
			if c.Stat().Direction == network.DirOutbound && !isRelayAddr(c.RemoteMultiaddr()) {
				addrs = append(addrs, c.RemoteMultiaddr().Encapsulate(ma.StringCast("/p2p/"+p.PeerID)).String())
			}
		}
		for _, a := range p.Addrs {
			if full := withP2P(a, p.PeerID); full != "" && !slices.Contains(addrs, full) {
				addrs = append(addrs, full)
			}
		}
		n.book.note(p.PeerID, p.Name, addrs, now)
	}
}

// withP2P returns addr ending in /p2p/id (unless it already ends in a
// /p2p/ part), or "" if addr is not a multiaddr.
func withP2P(addr, id string) string {
	m, err := ma.NewMultiaddr(addr)
	if err != nil || len(m) == 0 {
		return ""
	}
	if _, last := ma.SplitLast(m); last != nil && last.Protocol().Code == ma.P_P2P {
		return m.String()
	}
	return m.Encapsulate(ma.StringCast("/p2p/" + id)).String()
}

func addrStrings(ms []ma.Multiaddr) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.String()
	}
	return out
}

// InviteAddrs are the addresses an invite from this node carries: its own
// (loopback, LAN, public as others observe it, and through relays), then
// those of a few online members, members with a public address first, so
// that the invite works while this node is offline. Each ends in /p2p/<id>.
func (n *Node) InviteAddrs() []string {
	h := n.getHost()
	if h == nil {
		return nil
	}
	var out []string
	own := h.Addrs()
	if ifaces, err := h.Network().InterfaceListenAddresses(); err == nil {
		for _, a := range ifaces {
			if !slices.ContainsFunc(own, a.Equal) {
				own = append(own, a)
			}
		}
	}
	for _, a := range own {
		if first := a[0].Protocol().Code; first == ma.P_CIRCUIT {
			continue // the relay transport's own listener, no address
		}
		out = append(out, withP2P(a.String(), n.id.String()))
	}
	var public, others []Peer
	for _, p := range n.roster.list() {
		if !p.Online {
			continue
		}
		if slices.ContainsFunc(p.Addrs, isPublicString) {
			public = append(public, p)
		} else {
			others = append(others, p)
		}
	}
	for _, p := range append(public, others...)[:min(len(public)+len(others), inviteMaxPeer)] {
		for _, a := range p.Addrs {
			if full := withP2P(a, p.PeerID); full != "" {
				out = append(out, full)
			}
		}
	}
	return out
}

func isPublicString(a string) bool {
	m, err := ma.NewMultiaddr(a)
	return err == nil && manet.IsPublicAddr(m) && !isRelayAddr(m)
}

// rememberAddrs puts full peer addresses (an invite's) into the address
// book; it returns those that parsed.
func (n *Node) rememberAddrs(addrs []string) []peer.AddrInfo {
	now := time.Now()
	var out []peer.AddrInfo
	for _, a := range addrs {
		pi, err := peer.AddrInfoFromString(a)
		if err != nil || pi.ID == n.id {
			continue
		}
		n.book.note(pi.ID.String(), "", []string{a}, now)
		out = append(out, *pi)
	}
	return out
}

// AddKnown remembers members' addresses (from an invite of this node's own
// network) and dials those not connected yet.
func (n *Node) AddKnown(addrs []string) {
	pis := n.rememberAddrs(addrs)
	h := n.getHost()
	if h == nil || len(pis) == 0 {
		return
	}
	n.spawn(func() {
		n.mu.Lock()
		ctx := n.runCtx
		n.mu.Unlock()
		n.dialAll(ctx, h, pis)
		if err := n.book.save(); err != nil {
			n.log.Warn("cannot save the members' addresses", "err", err)
		}
	})
}

// MachineInviteAddrs are the addresses a node with the identity in dataDir
// will have on this machine once it listens on DefaultPort: loopback and
// every interface address, each ending in /p2p/<id>. An invite made before
// the node runs carries them.
func MachineInviteAddrs(dataDir string) ([]string, error) {
	priv, err := LoadIdentity(dataDir)
	if err != nil {
		return nil, err
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	ips, err := manet.InterfaceMultiaddrs()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ip := range ips {
		if manet.IsIP6LinkLocal(ip) {
			continue
		}
		a := ip.Encapsulate(ma.StringCast(fmt.Sprintf("/tcp/%d/p2p/%s", DefaultPort, id)))
		out = append(out, a.String())
	}
	return out, nil
}
