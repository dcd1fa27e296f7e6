package netmesh

import (
	"context"
	"crypto/hpke"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mudler/edgevpn/pkg/blockchain"
	"github.com/mudler/edgevpn/pkg/node"
	ma "github.com/multiformats/go-multiaddr"
)

// hubKeyInterval replaces the token's otp.crypto.interval for EdgeVPN's
// message hub: the hub names its gossip topic and derives the key that
// seals its messages from a TOTP of the wall clock, one per interval. Two
// members whose clocks differ by an hour would sit in different topics,
// under different keys, for an hour of every two and a half (the token's
// 9000 s), hearing nothing of each other; a PC that dual-boots Windows,
// whose hardware clock keeps local time, is off by hours until it syncs.
// With this interval (about 35,000 years) the topic and key depend on the
// token alone. Members authenticate each message by its signature, and the
// key was never more secret than the token.
const hubKeyInterval = 1 << 40

// ErrClosed is returned by Run, Up and Dial once the node has been closed.
var ErrClosed = errors.New("netmesh: node closed")

const (
	stateNew = iota
	stateRunning
	stateStopped
)

// Node is one member of a mesh. Build it with New, start it with Run.
type Node struct {
	cfg     Config
	tok     Token
	log     *slog.Logger
	priv    crypto.PrivKey
	id      peer.ID
	sealKey hpke.PrivateKey // see SealTo
	boot    string          // random per node: lets peers tell a restart from a replay
	started int64           // when this node was made (Unix ns): orders this machine's own restarts

	traffic *metrics.BandwidthCounter // what the streams carry: Traffic

	up   chan struct{} // closed once listening and joined
	done chan struct{} // closed when the node has stopped

	mu       sync.Mutex
	state    int
	stopping bool // no new goroutines may start
	cancel   context.CancelFunc
	runCtx   context.Context    // Run's; ends when the node stops
	evStop   context.CancelFunc // ends EdgeVPN's loops, after the leaving notice
	runErr   error
	host     host.Host
	ev       *node.Node
	dht      *dht.IpfsDHT // the members' DHT; nil when off
	mdns     *lanDiscovery
	services map[string]string // exposed service name -> local address
	// streamPeers maps the local address of a connection to an exposed
	// service to the peer whose stream it carries.
	streamPeers sync.Map
	tunnels     map[*Tunnel]struct{}
	dialing     map[peer.ID]bool      // full-mesh connects in flight
	blocked     map[peer.ID]bool      // see Block
	redialing   map[peer.ID]bool      // redials of a peer whose last connection closed, in flight
	redialed    map[peer.ID]time.Time // when each was last started (see redialQuiet)
	entering    map[peer.ID]time.Time // newly connected peers not yet in the room, until when to wait (see watchEntering)
	watching    bool                  // watchEntering runs

	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup // goroutines started by this package

	self     selfInfo
	every    atomic.Int64 // time.Duration: the interval the last heartbeat announced
	roster   *roster
	book     *addrBook     // members met, for rejoining
	trav     *traversal    // NAT traversal state
	announce chan struct{} // asks the heartbeat loop to announce now
	stats    counters
}

// New validates cfg and loads (or creates) the node's identity. It starts
// nothing: call Run. log may be nil.
func New(cfg Config, log *slog.Logger) (*Node, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, tok, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	priv, err := LoadIdentity(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	boot, err := randomString(12)
	if err != nil {
		return nil, err
	}
	sk, err := sealKeyOf(priv)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:       cfg,
		tok:       tok,
		log:       log.With("component", "netmesh"),
		priv:      priv,
		id:        id,
		sealKey:   sk,
		boot:      boot,
		started:   time.Now().UnixNano(),
		up:        make(chan struct{}),
		done:      make(chan struct{}),
		services:  map[string]string{},
		tunnels:   map[*Tunnel]struct{}{},
		dialing:   map[peer.ID]bool{},
		redialing: map[peer.ID]bool{},
		redialed:  map[peer.ID]time.Time{},
		entering:  map[peer.ID]time.Time{},
		traffic:   metrics.NewBandwidthCounter(),
		announce:  make(chan struct{}, 1),
	}
	n.roster = newRoster(cfg.HeartbeatInterval)
	var damage string
	n.book, damage = loadBook(cfg.DataDir, tok.Network())
	if damage != "" {
		n.log.Warn(damage)
	}
	n.rememberAddrs(append(tok.Addrs(), cfg.Known...))
	n.trav = newTraversal()
	n.self.info = NodeInfo{PeerID: id.String(), Name: cfg.Name, Version: cfg.AppVersion, SealKey: encodeSealKey(sk)}
	return n, nil
}

// ID is the node's peer ID, stable across restarts with the same DataDir.
func (n *Node) ID() string { return n.id.String() }

// Token returns the parsed invite token (it prints redacted).
func (n *Node) Token() Token { return n.tok }

// Addrs are the node's full listen multiaddrs, each ending in /p2p/<id>, for
// another node's Bootstrap. Empty until the node is up.
func (n *Node) Addrs() []string {
	h := n.getHost()
	if h == nil {
		return nil
	}
	return P2PAddrs(h)
}

// ListenAddrs are the addresses the node listens on, with the ports it
// got (a configured port 0 shows the port chosen). Empty until it is up.
func (n *Node) ListenAddrs() []string {
	h := n.getHost()
	if h == nil {
		return nil
	}
	var out []string
	for _, a := range h.Network().ListenAddresses() {
		out = append(out, a.String())
	}
	return out
}

// P2PAddrs lists a libp2p host's listen addresses as full multiaddrs ending
// in /p2p/<id>, the form --bootstrap takes.
func P2PAddrs(h host.Host) []string {
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	if err != nil {
		return nil
	}
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

func (n *Node) getHost() host.Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.host
}

// Run joins the mesh and serves until ctx ends or Close is called, then leaves
// it and releases everything. Cancellation is not an error. Run may be called
// once.
func (n *Node) Run(ctx context.Context) error {
	n.mu.Lock()
	switch n.state {
	case stateRunning:
		n.mu.Unlock()
		return errors.New("netmesh: node already running")
	case stateStopped:
		n.mu.Unlock()
		return ErrClosed
	}
	n.state = stateRunning
	ctx, cancel := context.WithCancel(ctx)
	n.cancel, n.runCtx = cancel, ctx
	n.mu.Unlock()
	defer cancel()

	err := n.start(ctx)
	if err == nil {
		close(n.up)
		n.log.Info("joined mesh", "peer_id", n.id.String(), "token", n.tok, "addrs", n.Addrs())
		<-ctx.Done()
	}
	if ctx.Err() != nil {
		err = nil // cancelled while starting: not a failure
	}
	cancel()
	serr := n.shutdown()
	if err == nil {
		err = serr
	}
	n.mu.Lock()
	n.state = stateStopped
	n.runErr = err
	n.closeErr = serr
	n.mu.Unlock()
	close(n.done)
	return err
}

// Up waits until the node listens and has joined the mesh. It returns the
// start error if Run failed, ErrClosed if the node stopped, or ctx's error.
func (n *Node) Up(ctx context.Context) error {
	select {
	case <-n.up:
		select {
		case <-n.done:
			return ErrClosed
		default:
			return nil
		}
	case <-n.done:
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.runErr != nil {
			return n.runErr
		}
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the node and waits until everything it started has ended. It is
// safe to call more than once and from several goroutines.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		if n.state == stateNew {
			n.state = stateStopped
			n.runErr = ErrClosed
			n.mu.Unlock()
			close(n.done)
			n.roster.close()
			return
		}
		cancel := n.cancel
		n.mu.Unlock()
		cancel()
		<-n.done
	})
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closeErr
}

// spawn runs f in a goroutine that shutdown waits for, unless the node is
// stopping.
func (n *Node) spawn(f func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopping {
		return false
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
	return true
}

// enter registers a goroutine that libp2p started (a stream handler) so that
// shutdown waits for it; it returns false when the node is stopping.
func (n *Node) enter() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopping {
		return false
	}
	n.wg.Add(1)
	return true
}

func (n *Node) start(ctx context.Context) error {
	enc, err := n.tok.Encode()
	if err != nil {
		return err
	}
	keyBytes, err := crypto.MarshalPrivateKey(n.priv)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	lvl, _ := parseLevel(n.cfg.LogLevel)
	tuneGossip()
	p2pOpts, err := libp2pOptions(n.cfg, n.tok)
	if err != nil {
		return err
	}
	p2pOpts = append(p2pOpts, n.traversalOptions()...)
	p2pOpts = append(p2pOpts, libp2p.BandwidthReporter(n.traffic))
	// EdgeVPN's mDNS cannot be stopped, so it stays off here and startMDNS
	// runs Potluck's (mdns.go). EdgeVPN's DHT would bootstrap from the public
	// IPFS nodes: the members' DHT (startDHT) replaces it.
	ev, err := node.New(
		node.Logger(newEdgeLogger(n.log, lvl)),
		node.FromBase64(false, false, enc, nil, nil),
		node.SealKeyInterval(hubKeyInterval),
		node.WithPrivKey(keyBytes),
		node.WithLibp2pOptions(p2pOpts...),
		node.WithStore(&blockchain.MemoryStore{}),
		node.WithSealer(&sealer{}),
		node.EnableGenericHub,
		node.GenericChannelHandlers(n.handleMessage),
		node.WithLedgerAnnounceTime(ledgerSyncPeriod),
		node.WithLedgerInterval(ledgerSyncPeriod),
	)
	if err != nil {
		return fmt.Errorf("configure mesh: %w", err)
	}
	n.mu.Lock()
	n.ev = ev
	n.mu.Unlock()

	// EdgeVPN runs until shutdown has said this node is leaving, not
	// until Run's context ends.
	evCtx, evStop := context.WithCancel(context.WithoutCancel(ctx))
	n.mu.Lock()
	n.evStop = evStop
	n.mu.Unlock()
	startErr := ev.Start(evCtx)
	h := ev.Host()
	n.mu.Lock()
	n.host = h
	n.mu.Unlock()
	if startErr != nil {
		return fmt.Errorf("join mesh: %w", startErr)
	}
	// Listening only now, on a complete host: a failed listen inside libp2p's
	// constructor would leave some of its goroutines behind.
	if err := n.listen(h); err != nil {
		return err
	}
	n.mu.Lock()
	for name := range n.services {
		h.SetStreamHandler(serviceProtocol(name), n.serveStream)
	}
	n.mu.Unlock()

	if n.cfg.Admit != nil {
		for _, c := range h.Network().Conns() {
			n.connected(h.Network(), c)
		}
	}
	h.Network().Notify(&network.NotifyBundle{ConnectedF: n.connected, DisconnectedF: n.disconnected})
	if n.cfg.Traversal {
		n.watchReachability(ctx, h)
		n.startHolePunching(ctx, h)
	}
	if n.cfg.MDNS {
		n.startMDNS(h)
	}
	for _, a := range n.cfg.Bootstrap {
		pi, _ := peer.AddrInfoFromString(a) // validated in New
		n.spawn(func() { n.keepConnected(ctx, *pi) })
	}
	n.spawn(func() { n.rejoinLoop(ctx, h) })
	if !n.cfg.DisableDHT {
		if err := n.startDHT(ctx, h); err != nil {
			n.log.Warn("members' DHT unavailable; peers are found through the invite, remembered members and the LAN", "err", err)
		}
	}
	if err := n.waitJoined(ctx); err != nil {
		return err
	}
	n.spawn(func() { n.heartbeatLoop(ctx) })
	n.spawn(func() { n.pingLoop(ctx) })
	n.spawn(func() { n.watchGossip(ctx, h) })
	return nil
}

func (n *Node) listen(h host.Host) error {
	listen := n.cfg.ListenAddrs
	if slices.Equal(listen, DefaultListenAddrs) && !portFree(DefaultPort) {
		n.log.Warn(fmt.Sprintf("port %d is taken (another Potluck node on this machine?): listening on a random port, which a router cannot forward; set --p2p-listen for a fixed one", DefaultPort))
		listen = fallbackListenAddrs
	}
	addrs := make([]ma.Multiaddr, 0, len(listen))
	for _, a := range listen {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return fmt.Errorf("listen address %q: %w", a, err)
		}
		addrs = append(addrs, m)
	}
	if err := h.Network().Listen(addrs...); err != nil {
		return fmt.Errorf("listen on %s: %w", strings.Join(listen, ", "), err)
	}
	return nil
}

// portFree says whether TCP port on every IPv4 interface can be listened on.
func portFree(port int) bool {
	ln, err := net.Listen("tcp4", fmt.Sprintf(":%d", port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// waitJoined waits until EdgeVPN's message hub has joined the token's room.
func (n *Node) waitJoined(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := n.ev.MessageHub.ListPeers(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// shutdown releases everything start created, in reverse order, and waits for
// every goroutine this package started.
func (n *Node) shutdown() error {
	n.mu.Lock()
	n.stopping = true
	tunnels := make([]*Tunnel, 0, len(n.tunnels))
	for t := range n.tunnels {
		tunnels = append(tunnels, t)
	}
	h, md, dht, evStop := n.host, n.mdns, n.dht, n.evStop
	n.mu.Unlock()

	for _, t := range tunnels {
		t.Close()
	}
	if h != nil {
		n.sayLeaving()
	}
	if evStop != nil {
		evStop()
	}
	if h != nil {
		n.noteMembers(h) // who was here, for the next start
	}
	n.stopHolePunching()
	if md != nil {
		md.Close()
	}
	var err error
	if dht != nil {
		if cerr := dht.Close(); cerr != nil {
			n.log.Debug("close DHT", "err", cerr)
		}
	}
	if h != nil {
		if cerr := h.Close(); cerr != nil {
			err = fmt.Errorf("close libp2p host: %w", cerr)
		}
	}
	n.wg.Wait()
	if serr := n.book.save(); serr != nil {
		n.log.Warn("cannot save the members' addresses", "err", serr)
	}
	n.roster.close()
	return err
}
