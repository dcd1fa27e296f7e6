package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	ipfslog "github.com/ipfs/go-log"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/mudler/edgevpn/pkg/blockchain"
	"github.com/mudler/edgevpn/pkg/crypto"
	"github.com/mudler/edgevpn/pkg/discovery"
	"github.com/mudler/edgevpn/pkg/node"
	"github.com/mudler/edgevpn/pkg/services"
	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/netmesh"
)

// EdgeVPN's defaults, as its command line sets them (cmd/util.go of
// v0.35.3): ledger announce and sync every 10 s, DHT discovery every 720 s,
// aliveness checks every 120 s (scrub 600 s, offline after 900 s).
const (
	evAnnounce      = 10 * time.Second
	evSync          = 10 * time.Second
	evDiscovery     = 720 * time.Second
	evAliveInterval = 120 * time.Second
	evAliveScrub    = 600 * time.Second
	evAliveMax      = 900 * time.Second
	evService       = "bench"
)

// evLogger drops EdgeVPN's log output. Its own logger would exit the
// process on Fatal; this one never does.
type evLogger struct{}

var _ ipfslog.StandardLogger = evLogger{}

func (evLogger) Debug(...any)            {}
func (evLogger) Debugf(string, ...any)   {}
func (evLogger) Info(...any)             {}
func (evLogger) Infof(string, ...any)    {}
func (evLogger) Warn(...any)             {}
func (evLogger) Warnf(string, ...any)    {}
func (evLogger) Warning(...any)          {}
func (evLogger) Warningf(string, ...any) {}
func (evLogger) Error(...any)            {}
func (evLogger) Errorf(string, ...any)   {}
func (evLogger) Fatal(...any)            {}
func (evLogger) Fatalf(string, ...any)   {}
func (evLogger) Panic(...any)            {}
func (evLogger) Panicf(string, ...any)   {}

// edgevpnOptions is what EdgeVPN's config.ToOpts builds from its default
// configuration, with these differences, all about staying on this machine:
// listening on 127.0.0.1 only (TCP and QUIC, its default transports), no DHT
// and no mDNS (peers come from bootstrap addresses), no UPnP port mapping
// and no AutoRelay (its peer source is the DHT). The data path of a tunnel
// (transports, security, muxer, the services code) is EdgeVPN's default.
// The config package itself is not imported: it pulls in the VPN's TUN
// dependencies, which this module does not carry.
//
// tcpOnly drops the QUIC listener, so that a node's traffic can be read from
// the kernel's TCP counters.
func edgevpnOptions(token string, bootstrap []string, tcpOnly bool) ([]node.Option, error) {
	var boot discovery.AddrList
	for _, a := range bootstrap {
		if err := boot.Set(a); err != nil {
			return nil, err
		}
	}
	listen := []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	if tcpOnly {
		listen = listen[:1]
	}
	opts := []node.Option{
		node.ListenAddresses(listen...),
		node.WithOwnership(blockchain.OwnershipEnforce, 0),
		node.WithDiscoveryInterval(evDiscovery),
		node.WithLedgerAnnounceTime(evAnnounce),
		node.WithLedgerInterval(evSync),
		node.Logger(evLogger{}),
		node.WithDiscoveryBootstrapPeers(boot),
		node.LibP2PLogLevel(ipfslog.LevelFatal),
		node.WithSealer(&crypto.AESSealer{}),
		node.FromBase64(false, false, token, nil, nil),
		node.WithStore(&blockchain.MemoryStore{}),
		node.WithLibp2pOptions(
			libp2p.UserAgent("edgevpn"),
			libp2p.EnableRelayService(),
			libp2p.AutoNATServiceRateLimit(10, 10, 60*time.Second),
			libp2p.ResourceManager(&network.NullResourceManager{}),
			libp2p.EnableHolePunching(),
			libp2p.EnableNATService(),
		),
	}
	// `edgevpn service-add` and `service-connect` add the aliveness service.
	opts = append(opts, services.Alive(evAliveInterval, evAliveScrub, evAliveMax)...)
	return opts, nil
}

// evTunnel is EdgeVPN's service tunnel between two in-process nodes.
type evTunnel struct {
	addr    string // local end (ConnectNetworkService's listener)
	ready   time.Duration
	cancel  context.CancelFunc
	exposer *node.Node
	dialer  *node.Node
}

// startEdgeVPNTunnel exposes target with services.RegisterService on one
// node and connects to it with services.ConnectNetworkService on another.
// ConnectNetworkService makes Start block for ever and keeps its listener
// after cancellation: that goroutine is left to end with the process.
func startEdgeVPNTunnel(ctx context.Context, target string) (*evTunnel, error) {
	token, err := netmesh.NewToken()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	nctx, cancel := context.WithCancel(context.Background())
	t := &evTunnel{cancel: cancel}

	opts, err := edgevpnOptions(token, nil, false)
	if err != nil {
		cancel()
		return nil, err
	}
	opts = append(opts, services.RegisterService(evLogger{}, evAnnounce, evService, target)...)
	t.exposer, err = node.New(opts...)
	if err != nil {
		cancel()
		return nil, err
	}
	if err := t.exposer.Start(nctx); err != nil {
		cancel()
		return nil, fmt.Errorf("EdgeVPN node: %w", err)
	}

	port, err := engine.FreePort()
	if err != nil {
		t.close()
		return nil, err
	}
	t.addr = fmt.Sprintf("127.0.0.1:%d", port)
	opts, err = edgevpnOptions(token, netmesh.P2PAddrs(t.exposer.Host()), false)
	if err != nil {
		t.close()
		return nil, err
	}
	opts = append(opts, node.WithNetworkService(services.ConnectNetworkService(evAnnounce, evService, t.addr)))
	t.dialer, err = node.New(opts...)
	if err != nil {
		t.close()
		return nil, err
	}
	startErr := make(chan error, 1)
	go func() { startErr <- t.dialer.Start(nctx) }()

	deadline := time.Now().Add(60 * time.Second)
	for !echoWorks(t.addr) {
		select {
		case err := <-startErr:
			t.close()
			return nil, fmt.Errorf("EdgeVPN connecting node: %v", err)
		case <-ctx.Done():
			t.close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.close()
			return nil, fmt.Errorf("EdgeVPN's tunnel did not carry a message within 60s of starting")
		}
	}
	t.ready = time.Since(start)
	return t, nil
}

// transport names the transport of the connection the tunnel uses.
func (t *evTunnel) transport() string {
	h := t.dialer.Host()
	if h == nil {
		return "?"
	}
	for _, c := range h.Network().ConnsToPeer(t.exposer.Host().ID()) {
		a := c.RemoteMultiaddr().String()
		switch {
		case strings.Contains(a, "/quic"):
			return "QUIC"
		case strings.Contains(a, "/tcp/"):
			return "TCP"
		}
		return a
	}
	return "?"
}

// close stops what can be stopped: the nodes' contexts and libp2p hosts.
// The connecting node's listener stays open until the process ends.
func (t *evTunnel) close() {
	t.cancel()
	for _, n := range []*node.Node{t.dialer, t.exposer} {
		if n != nil && n.Host() != nil {
			n.Host().Close()
		}
	}
}

// edgevpnNodeArg runs the benchmark binary as one EdgeVPN node with the
// default configuration (see edgevpnOptions). It prints "id <peer id>",
// "addr <multiaddr>" lines, then "seen <peer id>" whenever a peer appears
// among the ledger's available nodes (EdgeVPN's own liveness view), and
// runs until its standard input closes or it is signalled. With -expect N it
// stops looking once it has seen N peers, so that it then idles.
const edgevpnNodeArg = "edgevpn-node"

func edgevpnNodeMain(args []string) int {
	fs := flag.NewFlagSet(edgevpnNodeArg, flag.ContinueOnError)
	token := fs.String("token", "", "network token")
	bootstrap := fs.String("bootstrap", "", "comma-separated bootstrap multiaddrs")
	tcpOnly := fs.Bool("tcp-only", false, "listen on TCP only (no QUIC)")
	expect := fs.Int("expect", 0, "stop watching the ledger once this many peers were seen (0: never)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var boot []string
	if *bootstrap != "" {
		boot = strings.Split(*bootstrap, ",")
	}
	opts, err := edgevpnOptions(*token, boot, *tcpOnly)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { // the parent holds our stdin: its end is ours
		bufio.NewReader(os.Stdin).ReadString(0)
		stop()
	}()
	n, err := node.New(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := n.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	self := n.Host().ID().String()
	fmt.Printf("id %s\n", self)
	for _, a := range netmesh.P2PAddrs(n.Host()) {
		fmt.Printf("addr %s\n", a)
	}
	ledger, err := n.Ledger()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	seen := map[string]bool{}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			n.Host().Close()
			return 0
		case <-tick.C:
		}
		if *expect > 0 && len(seen) >= *expect {
			tick.Stop() // idle from here on
			continue
		}
		for _, id := range services.AvailableNodes(ledger, evAliveMax) {
			if id != self && !seen[id] {
				seen[id] = true
				fmt.Printf("seen %s\n", id)
			}
		}
	}
}
