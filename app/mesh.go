package app

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/members"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/server"
	"github.com/potluck-gpu/potluck/settings"
)

// Mesh service names.
const (
	serviceRPC    = "llama-rpc" // a llama.cpp RPC worker
	serviceOpenAI = "openai"    // a llama-server for federated requests
	serviceLlama  = "llama.cpp" // not a service: the llama.cpp build, in Services
)

// meshSession is membership of one mesh: the node, its lifetime, and the
// tunnels opened to peers' services.
type meshSession struct {
	node   *netmesh.Node
	token  string
	tok    netmesh.Token
	cancel context.CancelFunc
	done   chan struct{}
	closed sync.Once

	mu      sync.Mutex
	tunnels map[string]*netmesh.Tunnel // peer id + "/" + service
	// A retired session is a network this node moved away from when its
	// owner removed a member. It stays up only to hand the signed removal
	// to the members that have not moved yet, and admits nobody else.
	retired *members.Handoff
}

// sessionOptions vary a session from the configuration.
type sessionOptions struct {
	bootstrap []string         // more peers to dial first
	known     []string         // members' addresses from an invite
	listen    []string         // listen here instead of the configured addresses
	retired   *members.Handoff // a retired network's session
}

// openSession joins the mesh of token without making it the node's network.
func (n *Node) openSession(ctx context.Context, token string, o sessionOptions) (*meshSession, error) {
	n.mu.Lock()
	runCtx := n.runCtx
	n.mu.Unlock()
	if runCtx == nil {
		return nil, fmt.Errorf("the node is not running")
	}
	tok, err := netmesh.ParseToken(token)
	if err != nil {
		return nil, &nodestate.InvalidTokenError{Err: err}
	}
	s := &meshSession{token: token, tok: tok, done: make(chan struct{}), tunnels: map[string]*netmesh.Tunnel{}, retired: o.retired}
	cfg := netmesh.DefaultConfig(token)
	cfg.DataDir = n.cfg.DataDir
	cfg.Name = n.cfg.Name
	cfg.ListenAddrs = n.cfg.P2PListen
	cfg.Bootstrap = append(slices.Clone(n.cfg.Bootstrap), o.bootstrap...)
	cfg.Known = o.known
	cfg.Traversal = !n.cfg.NoTraversal
	cfg.PortMap = !n.cfg.NoPortMap
	if len(o.listen) > 0 {
		cfg.ListenAddrs = o.listen
	}
	cfg.DisableDHT = n.cfg.NoDHT
	cfg.MDNS = !n.cfg.NoMDNS
	cfg.EnableLimits = n.cfg.P2PLimits
	cfg.LogLevel = n.cfg.P2PLogLevel
	cfg.AppVersion = Version
	cfg.Admit = func(id string) bool { return n.admits(s, id) }
	cfg.OnNotice = func(from string, payload []byte) { n.onNotice(s, from, payload) }
	if n.cfg.Heartbeat > 0 {
		cfg.HeartbeatInterval = n.cfg.Heartbeat
	}
	if o.retired != nil {
		// The node's own network keeps the configured ports (a port
		// forward points at them); a retired one takes any free port
		// on the same interfaces.
		cfg.ListenAddrs = anyPort(cfg.ListenAddrs)
		cfg.Name = n.cfg.Name + " (moving)"
	}
	mn, err := netmesh.New(cfg, n.log.With("part", "mesh"))
	if err != nil {
		return nil, err
	}
	s.node = mn
	mctx, cancel := context.WithCancel(runCtx)
	s.cancel = cancel
	go func() {
		defer close(s.done)
		if err := mn.Run(mctx); err != nil {
			n.log.Warn("mesh stopped", "err", err)
		}
	}()
	upCtx, upCancel := context.WithTimeout(ctx, 30*time.Second)
	defer upCancel()
	if err := mn.Up(upCtx); err != nil {
		cancel()
		mn.Close()
		<-s.done
		return nil, fmt.Errorf("join the network: %w", err)
	}
	return s, nil
}

// anyPort turns listen multiaddrs into the same ones on any free port.
func anyPort(addrs []string) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		parts := strings.Split(a, "/")
		for i := 1; i+1 < len(parts); i++ {
			if parts[i] == "tcp" || parts[i] == "udp" {
				parts[i+1] = "0"
			}
		}
		out = append(out, strings.Join(parts, "/"))
	}
	return out
}

// installMesh makes s the node's network.
func (n *Node) installMesh(s *meshSession) {
	n.roll.UseNetwork(networkID(s.tok))
	n.mu.Lock()
	n.mesh = s
	runCtx := n.runCtx
	n.mu.Unlock()
	mctx, cancel := context.WithCancel(runCtx)
	go func() {
		<-s.done
		cancel()
	}()
	go n.watchPeers(mctx, s)
	n.publishInfo()
	n.seenSelf()
	n.log.Info("joined the network", "peer_id", s.node.ID(), "token", s.tok)
}

// closeSession stops a session that is not (or no longer) the node's
// network. It may be called more than once.
func (n *Node) closeSession(s *meshSession) {
	s.closed.Do(func() {
		s.cancel()
		s.mu.Lock()
		for k, t := range s.tunnels {
			t.Close()
			delete(s.tunnels, k)
		}
		s.mu.Unlock()
		if err := s.node.Close(); err != nil {
			n.log.Warn("leave the network", "err", err)
		}
		n.rejectedBefore.Add(s.node.Rejected())
	})
	<-s.done
}

// stopMesh leaves the mesh, if any. The caller holds opMu.
func (n *Node) stopMesh() {
	n.mu.Lock()
	s := n.mesh
	n.mesh = nil
	n.mu.Unlock()
	if s == nil {
		return
	}
	n.closeSession(s)
	if h := n.modelHost(); h != nil {
		h.Kick()
	}
}

func (n *Node) currentMesh() *meshSession {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mesh
}

// watchPeers turns mesh events into node events and re-planning.
func (n *Node) watchPeers(ctx context.Context, s *meshSession) {
	events, cancel := s.node.Subscribe()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			now := time.Now()
			p := n.peerView(ev.Peer, now)
			if ev.Type == netmesh.PeerJoined || ev.Type == netmesh.PeerUpdated {
				n.seenPeer(ev.Peer, now)
				n.relend(s)
			}
			switch ev.Type {
			case netmesh.PeerJoined:
				n.movedHere(p.ID)
				n.log.Info("peer joined", "name", p.Name, "peer_id", p.ID, "mode", p.Mode)
				n.events.publish(nodestate.Event{Kind: nodestate.EventPeerJoined, Peer: &p, Message: p.Name + " joined"})
			case netmesh.PeerOffline, netmesh.PeerRemoved:
				s.closeTunnels(p.ID)
				if ev.Type == netmesh.PeerOffline {
					n.log.Info("peer lost", "name", p.Name, "peer_id", p.ID)
					n.events.publish(nodestate.Event{Kind: nodestate.EventPeerLost, Peer: &p, Message: p.Name + " went offline"})
				}
			default:
				n.events.publish(nodestate.Event{Kind: nodestate.EventStatus})
			}
			if h := n.modelHost(); h != nil {
				h.PeerChanged(ev.Type, p)
			}
			n.maybeSeed()
			n.maybeMatch()
		}
	}
}

// tunnel returns a local address for a peer's service, dialing it once.
func (s *meshSession) tunnel(ctx context.Context, peerID, service string) (string, error) {
	key := peerID + "/" + service
	s.mu.Lock()
	t, ok := s.tunnels[key]
	s.mu.Unlock()
	if ok {
		return t.Addr(), nil
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	t, err := s.node.Dial(dctx, peerID, service)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.tunnels[key]; ok { // lost a race: keep the first
		t.Close()
		return old.Addr(), nil
	}
	s.tunnels[key] = t
	return t.Addr(), nil
}

// closeTunnels drops the tunnels to a peer, e.g. when it goes offline.
func (s *meshSession) closeTunnels(peerID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, t := range s.tunnels {
		if strings.HasPrefix(k, peerID+"/") {
			t.Close()
			delete(s.tunnels, k)
		}
	}
}

// publishInfo announces what this node offers now.
func (n *Node) publishInfo() {
	s := n.currentMesh()
	if s == nil {
		return
	}
	devs, choice := n.localDevices(), n.deviceChoice()
	hwSum := n.hardwareSummary()
	_, versions, _ := n.engineRuntime()
	engineInfo := n.engineInfo()
	lendTo := n.lendAnnouncement(s.node.ID())
	n.mu.Lock()
	mode := n.shareLocked()
	mh := n.host
	workerProtocol := versions.RPCProtocol
	if n.worker != nil && n.worker.Versions().RPCProtocol != "" {
		workerProtocol = n.worker.Versions().RPCProtocol
	}
	n.mu.Unlock()
	var models []string
	if mode == nodestate.ShareServer {
		if mh != nil {
			if st := mh.Status(); st.Ready {
				models = []string{st.ID}
			}
		}
		for _, l := range n.loadedModels() {
			if l.Ready {
				models = append(models, l.Name)
			}
		}
	}
	inflight := n.servedInFlight()
	var fi fileInfo
	if mode != nodestate.ShareOff {
		fi.Offer = n.offeredFiles()
	}
	fi.NoLoads = mode == nodestate.ShareServer && n.cfg.NoPeerLoads
	fi.Head = n.headFiles()
	if mode == nodestate.ShareWorker {
		fi.Seeded = n.seeder.Seeded()
	}
	files, _ := json.Marshal(fi)
	s.node.SetInfo(func(i *netmesh.NodeInfo) {
		i.Name = n.cfg.Name
		i.Version = Version
		i.Mode = string(mode)
		i.MemoryOffered = 0
		published := devs
		if mode == nodestate.ShareWorker {
			// Exactly what the RPC worker exposes, in its order: the
			// head names them RPC0, RPC1… in this order.
			published = lent(devs, choice)
		}
		if mode != nodestate.ShareOff {
			i.MemoryOffered = offerTotal(published)
		}
		i.LendTo = nil
		if mode == nodestate.ShareWorker {
			i.LendTo = lendTo
		}
		i.Devices, _ = json.Marshal(published)
		i.Hardware = hwSum
		i.Models = models
		i.Files = files
		i.InFlight = inflight
		if i.Services == nil {
			i.Services = map[string]netmesh.ServiceInfo{}
		}
		if versions.Build != "" {
			i.Services[serviceLlama] = netmesh.ServiceInfo{Version: versions.Build}
		}
		if _, ok := i.Services[serviceRPC]; ok {
			i.Services[serviceRPC] = netmesh.ServiceInfo{Version: workerProtocol}
		}
		i.Engine = engineInfo
	})
	n.events.publish(nodestate.Event{Kind: nodestate.EventStatus})
}

// Peers implements tray.Controller.
func (n *Node) Peers() []nodestate.Peer {
	s := n.currentMesh()
	if s == nil {
		return []nodestate.Peer{}
	}
	now := time.Now()
	ps := s.node.Peers()
	out := make([]nodestate.Peer, 0, len(ps))
	known := map[string]bool{}
	for _, p := range ps {
		out = append(out, n.peerView(p, now))
		known[p.PeerID] = true
	}
	// A member whose RPC streams the gate refused is listed even when it
	// never announced itself: by its id, as far as this node knows it.
	for _, id := range n.gateRefusals.Peers() {
		if !known[id] {
			out = append(out, n.peerView(netmesh.Peer{NodeInfo: netmesh.NodeInfo{PeerID: id}}, now))
		}
	}
	slices.SortFunc(out, func(a, b nodestate.Peer) int { return strings.Compare(a.Name+a.ID, b.Name+b.ID) })
	return out
}

func (n *Node) peerView(p netmesh.Peer, now time.Time) nodestate.Peer {
	v := nodestate.Peer{
		ID: p.PeerID, Name: p.Name, Version: p.Version, Mode: nodestate.ShareMode(p.Mode),
		MemoryOffered: p.MemoryOffered, LendTo: p.LendTo, Models: p.Models, InFlight: p.InFlight,
		Online: p.Online, Conn: p.Conn, Transport: p.Transport,
		RTTMS: float64(p.RTT) / float64(time.Millisecond), MinRTTMS: float64(p.MinRTT) / float64(time.Millisecond),
		RPCRefused: n.gateRefusals.Of(p.PeerID),
	}
	if v.Mode == "" {
		v.Mode = nodestate.ShareOff
	}
	if !p.LastSeen.IsZero() {
		v.LastSeenMS = now.Sub(p.LastSeen).Milliseconds()
	}
	if len(p.Hardware) > 0 {
		v.Hardware = p.Hardware
		var hwSum struct {
			OS string `json:"os"`
		}
		if json.Unmarshal(p.Hardware, &hwSum) == nil {
			v.OS = hwSum.OS
		}
	}
	if v.Engine = decodeEngine(p.Engine); v.Engine != nil && v.OS == "" {
		v.OS = v.Engine.OS
	}
	if len(p.Services) > 0 {
		v.Services = p.Services
	}
	v.Devices = decodeDevices(p.Devices)
	fi := decodeFiles(p.Files)
	v.Files, v.Head, v.Seeded, v.NoPeerLoads = fi.Offer, fi.Head, fi.Seeded, fi.NoLoads
	return v
}

// InviteToken implements tray.Controller.
func (n *Node) InviteToken() (string, error) {
	s := n.currentMesh()
	if s == nil {
		return "", errNoMesh
	}
	// The addresses are read now: an invite copied later carries the
	// addresses of later.
	return s.tok.WithAddrs(s.node.InviteAddrs()).Encode()
}

// splitInvite separates an invite's member addresses from the network's
// token. The node keeps and compares the token alone; the mesh remembers
// the addresses.
func splitInvite(token string) (network string, addrs []string) {
	tok, err := netmesh.ParseToken(token)
	if err != nil || len(tok.Addrs()) == 0 {
		return token, nil
	}
	enc, err := tok.WithAddrs(nil).Encode()
	if err != nil {
		return token, nil
	}
	return enc, tok.Addrs()
}

func (n *Node) counters() server.Counters {
	var c server.Counters
	s := n.currentMesh()
	if s == nil {
		return c
	}
	for _, p := range s.node.Peers() {
		if p.Online {
			c.PeersOnline++
		}
	}
	st := s.node.TunnelStats()
	c.TunnelBytes = st.BytesSent + st.BytesReceived
	c.MessagesRejected = n.rejectedBefore.Load() + s.node.Rejected()
	c.RPCRefused = n.gateRefusals.Reasons()
	n.mu.Lock()
	for _, r := range n.retired {
		c.MessagesRejected += r.node.Rejected()
	}
	n.mu.Unlock()
	return c
}

// Join implements tray.Controller.
func (n *Node) Join(ctx context.Context, token string) error {
	token = strings.TrimSpace(token)
	tok, err := netmesh.ParseToken(token)
	if err != nil {
		return &nodestate.InvalidTokenError{Err: err}
	}
	token, known := splitInvite(token)
	tok = tok.WithAddrs(nil)
	n.opMu.Lock()
	defer n.opMu.Unlock()
	set := n.settings.Get()
	if movedFrom(set, token) {
		// An old invite of this network: its owner moved it since.
		token = set.Token
		tok, _ = netmesh.ParseToken(token)
	}
	prev, perr := netmesh.ParseToken(set.Token)
	if s := n.currentMesh(); s != nil && s.tok.SameNetwork(tok) {
		// An invite to this node's own network: its addresses may be
		// news (a member that can relay, say).
		s.node.AddKnown(known)
		return nil
	}
	if perr != nil || networkID(prev) != networkID(tok) {
		n.forgetRetired() // another network: nobody there waits for us
	}
	n.setJoining(true)
	defer n.setJoining(false)
	n.stopMesh()
	s, err := n.openSession(ctx, token, sessionOptions{known: known})
	if err != nil {
		n.warn(nodestate.Warning{Code: "mesh", Severity: nodestate.SeverityError, Message: err.Error()})
		return err
	}
	// Saved before anyone can see the node in the network, so that a
	// node that stops right after still knows its network.
	n.modify(func(s *settings.Settings) { s.Token = token })
	n.installMesh(s)
	n.clearWarning("mesh")
	n.clearWarning("saved-mesh")
	if err := n.reexpose(); err != nil {
		return err
	}
	n.events.publish(nodestate.Event{Kind: nodestate.EventJoined, Message: "joined the network"})
	if h := n.modelHost(); h != nil {
		h.Kick()
	}
	return nil
}

func (n *Node) setJoining(v bool) {
	n.mu.Lock()
	n.joining = v
	n.mu.Unlock()
	n.events.publish(nodestate.Event{Kind: nodestate.EventStatus})
}

// Leave implements tray.Controller.
func (n *Node) Leave(ctx context.Context) error {
	n.opMu.Lock()
	defer n.opMu.Unlock()
	n.stopWorker()
	n.stopMesh()
	n.forgetRetired()
	err := n.settings.Modify(func(s *settings.Settings) {
		s.Token = ""
		s.Share = nodestate.ShareOff
		s.Handoffs, s.PastTokens = nil, nil
	})
	n.publishInfo()
	n.events.publish(nodestate.Event{Kind: nodestate.EventStatus, Message: "left the network"})
	return err
}

// tunnelSent is the bytes sent so far through this node's tunnels to the
// service of each peer.
func (s *meshSession) tunnelSent(peerIDs []string, service string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for _, id := range peerIDs {
		if t, ok := s.tunnels[id+"/"+service]; ok {
			n += t.Stats().BytesSent
		}
	}
	return n
}

// meshTraffic is the status's copy of what the mesh carried.
func meshTraffic(t netmesh.Traffic) *nodestate.MeshTraffic {
	out := &nodestate.MeshTraffic{In: t.In, Out: t.Out, ByProtocol: make(map[string]nodestate.ByteCount, len(t.ByProtocol))}
	for p, c := range t.ByProtocol {
		out.ByProtocol[p] = nodestate.ByteCount{In: c.In, Out: c.Out}
	}
	return out
}
