package netmesh

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	mathrand "math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/zeroconf/v2"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/potluck-gpu/potluck/internal/ctxtime"
)

// LAN discovery (mDNS) in the records go-libp2p's mdns service uses, so
// that every version of Potluck finds every other: a service named by the
// token, whose TXT records are "dnsaddr=" and a member's full addresses.
//
// go-libp2p's service asks the LAN about the service once a minute for as
// long as it runs, and every member answers every question to all. On a
// LAN of n members that is n questions a minute and n answers to each,
// each heard by every member: at 50 members, 2,450 answers a minute, most
// of a quiet member's traffic. Here every member answers, but:
//
//   - a member connected to no other asks until it is;
//   - a member in the mesh asks seldom, once every mdnsMeshAsk for each
//     member it is connected to (jittered), so that the mesh as a whole
//     asks about once every mdnsMeshAsk whatever its size. Two groups of
//     one network on one LAN that formed apart (49 members starting at
//     once lose answers in the burst; two invites from two members) find
//     each other that way: without it they never did.
//
// Members in the mesh hear of newcomers through it, as soon as a
// newcomer's own question reaches any member.
const (
	mdnsDomain     = "local"
	mdnsTXTPrefix  = "dnsaddr="
	mdnsAloneCheck = time.Second      // how often a member looks whether it is alone
	mdnsRetry      = 30 * time.Second // after a question failed
	mdnsMeshQuery  = 3 * time.Second  // how long a member in the mesh listens: one question (zeroconf asks again after 4 s)
)

// mdnsMeshAsk is how often the mesh as a whole asks the LAN (tests shorten
// it), and mdnsAskAlone whether a member alone asks (tests turn it off to
// split a LAN in two).
var (
	mdnsMeshAsk  = time.Minute
	mdnsAskAlone = true
)

// lanDiscovery is a node's mDNS: its answer to the LAN, and the questions
// it asks while alone.
type lanDiscovery struct {
	server *zeroconf.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (d *lanDiscovery) Close() {
	d.cancel()
	d.server.Shutdown()
	d.wg.Wait()
}

func (n *Node) startMDNS(h host.Host) {
	d, err := n.newLANDiscovery(h)
	if err != nil {
		// No multicast-capable interface: carry on without LAN discovery.
		n.log.Warn("mDNS discovery unavailable; peers on this LAN will not be found automatically", "err", err)
		return
	}
	n.mu.Lock()
	n.mdns = d
	n.mu.Unlock()
}

func (n *Node) newLANDiscovery(h host.Host) (*lanDiscovery, error) {
	listen, err := h.Network().InterfaceListenAddresses()
	if err != nil {
		return nil, err
	}
	var txts, ips []string
	var ip4, ip6 bool
	for _, a := range listen {
		if !lanAddr(a) {
			continue
		}
		txts = append(txts, mdnsTXTPrefix+a.Encapsulate(ma.StringCast("/p2p/"+h.ID().String())).String())
		first, _ := ma.SplitFirst(a)
		switch code := first.Protocol().Code; {
		case code == ma.P_IP4 && !ip4:
			ip4 = true
			ips = append(ips, first.Value())
		case code == ma.P_IP6 && !ip6:
			ip6 = true
			ips = append(ips, first.Value())
		}
	}
	if len(ips) == 0 {
		return nil, errors.New("no IP address to announce")
	}
	var b [24]byte
	rand.Read(b[:])
	name := hex.EncodeToString(b[:]) // the instance and host name: random, like go-libp2p's
	// The port is required and unused: the TXT records carry the addresses.
	server, err := zeroconf.RegisterProxy(name, n.tok.cfg.MDNS, mdnsDomain, DefaultPort, name, ips, txts, nil)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &lanDiscovery{server: server, cancel: cancel}
	d.wg.Go(func() { n.askWhenDue(ctx, h) })
	return d, nil
}

// lanAddr says whether a is an address for the LAN's records: an IP (or
// a .local name) and a transport, no relay or browser transport.
func lanAddr(a ma.Multiaddr) bool {
	first, _ := ma.SplitFirst(a)
	if first == nil {
		return false
	}
	switch first.Protocol().Code {
	case ma.P_IP4, ma.P_IP6:
	case ma.P_DNS, ma.P_DNS4, ma.P_DNS6:
		if !strings.HasSuffix(strings.ToLower(first.Value()), ".local") {
			return false
		}
	default:
		return false
	}
	ok := true
	ma.ForEach(a, func(c ma.Component) bool {
		switch c.Protocol().Code {
		case ma.P_CIRCUIT, ma.P_WEBTRANSPORT, ma.P_WEBRTC, ma.P_WEBRTC_DIRECT, ma.P_WS, ma.P_WSS:
			ok = false
		}
		return ok
	})
	return ok
}

// askWhenDue asks the LAN for members while this node is connected to
// none, and stops asking once it is; in the mesh it asks for
// mdnsMeshQuery when meshAskDue says. A question that fails (no multicast
// here) is asked again after mdnsRetry.
func (n *Node) askWhenDue(ctx context.Context, h host.Host) {
	alone := func() bool { return len(h.Network().Peers()) == 0 }
	last, jitter := time.Now(), meshAskJitter()
	for {
		wait := mdnsAloneCheck
		switch peers := len(h.Network().Peers()); {
		case peers == 0 && mdnsAskAlone:
			if !n.askLAN(ctx, h, alone) {
				wait = mdnsRetry
			}
			last, jitter = time.Now(), meshAskJitter()
		case peers > 0 && meshAskDue(time.Since(last), peers, jitter):
			query, cancel := context.WithTimeout(ctx, mdnsMeshQuery)
			if !n.askLAN(query, h, func() bool { return true }) {
				wait = mdnsRetry
			}
			cancel()
			last, jitter = time.Now(), meshAskJitter()
		}
		if !ctxtime.Sleep(ctx, wait) {
			return
		}
	}
}

// meshAskDue says whether a member in the mesh that last asked the LAN
// (or started) since ago, and is connected to peers members, asks again:
// after mdnsMeshAsk for each of them and itself, times jitter. It is
// looked at with the present count, so a member that has just started
// and is still meeting the others waits as long as they do.
func meshAskDue(since time.Duration, peers int, jitter float64) bool {
	return since >= time.Duration(float64(mdnsMeshAsk)*float64(peers+1)*jitter)
}

// meshAskJitter spreads the members' questions: between half and one and
// a half times the interval.
func meshAskJitter() float64 { return 0.5 + mathrand.Float64() }

// askLAN asks until ctx ends or, looked at every mdnsAloneCheck, alone
// says no; it returns false if the question failed. zeroconf asks at once,
// then at growing intervals up to a minute.
func (n *Node) askLAN(ctx context.Context, h host.Host, alone func() bool) bool {
	tick := time.NewTicker(mdnsAloneCheck)
	defer tick.Stop()
	ctx, cancel := context.WithCancel(ctx)
	entries := make(chan *zeroconf.ServiceEntry, 64)
	failed := make(chan error, 1)
	go func() { failed <- zeroconf.Browse(ctx, n.tok.cfg.MDNS, mdnsDomain, entries) }()
	// stop ends the question and waits for it; zeroconf's sends of
	// entries do not watch ctx, so what it still sends is read.
	stop := func() {
		cancel()
		for {
			select {
			case _, ok := <-entries:
				if !ok {
					entries = nil
				}
			case <-failed:
				return
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			stop()
			return true
		case err := <-failed:
			cancel()
			n.log.Debug("mDNS question failed", "err", err)
			return false
		case <-tick.C:
			if !alone() {
				stop()
				return true
			}
		case e, ok := <-entries:
			if !ok {
				entries = nil // ended: failed says why
				continue
			}
			for _, pi := range mdnsPeers(e) {
				if pi.ID != h.ID() {
					go n.lanPeerFound(pi)
				}
			}
		}
	}
}

// mdnsPeers reads a member's addresses from its TXT records.
func mdnsPeers(e *zeroconf.ServiceEntry) []peer.AddrInfo {
	var addrs []ma.Multiaddr
	for _, s := range e.Text {
		v, ok := strings.CutPrefix(s, mdnsTXTPrefix)
		if !ok {
			continue
		}
		if a, err := ma.NewMultiaddr(v); err == nil {
			addrs = append(addrs, a)
		}
	}
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil {
		return nil
	}
	return infos
}
