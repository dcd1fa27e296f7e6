package netmesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// serviceProtocolPrefix + service name is the libp2p protocol of a service.
const serviceProtocolPrefix = "/potluck/svc/1.0.0/"

const (
	serviceDialTimeout = 5 * time.Second  // exposed side: connecting to the local service
	streamOpenTimeout  = 15 * time.Second // dialing side: opening the libp2p stream
	copyBufferSize     = 256 << 10
)

var serviceNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

func serviceProtocol(name string) protocol.ID {
	return protocol.ID(serviceProtocolPrefix + name)
}

func checkServiceName(name string) error {
	if !serviceNameRE.MatchString(name) {
		return fmt.Errorf("service name %q: want 1-64 of a-z 0-9 . _ - starting with a letter or digit", name)
	}
	return nil
}

// TunnelStats counts tunnel traffic. Sent is what went from this machine into
// the mesh, Received what came out of it, whichever side opened the tunnel.
type TunnelStats struct {
	BytesSent     uint64
	BytesReceived uint64
	Streams       uint64 // tunnel connections carried so far
	ActiveStreams int64
}

type counters struct {
	sent, received, streams atomic.Uint64
	active                  atomic.Int64
	rejected                atomic.Uint64 // mesh messages that failed their checks
}

func (c *counters) snapshot() TunnelStats {
	return TunnelStats{
		BytesSent:     c.sent.Load(),
		BytesReceived: c.received.Load(),
		Streams:       c.streams.Load(),
		ActiveStreams: c.active.Load(),
	}
}

// TunnelStats returns the traffic of every tunnel through this node, exposed
// services and dialed ones.
func (n *Node) TunnelStats() TunnelStats { return n.stats.snapshot() }

// Expose serves the TCP service at localAddr, which must be a loopback
// address, to every node of the mesh under name. Exposing a name again
// replaces its address. The service is listed in this node's NodeInfo.
func (n *Node) Expose(name, localAddr string) error {
	if err := checkServiceName(name); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(localAddr)
	if err != nil {
		return fmt.Errorf("service %s: address %q: %w", name, localAddr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("service %s: address %q is not a loopback address", name, localAddr)
	}
	if port == "" || port == "0" {
		return fmt.Errorf("service %s: address %q has no port", name, localAddr)
	}
	n.mu.Lock()
	n.services[name] = localAddr
	h := n.host
	n.mu.Unlock()
	if h != nil {
		h.SetStreamHandler(serviceProtocol(name), n.serveStream)
	}
	n.SetInfo(func(i *NodeInfo) {
		if _, ok := i.Services[name]; !ok {
			if i.Services == nil {
				i.Services = map[string]ServiceInfo{}
			}
			i.Services[name] = ServiceInfo{}
		}
	})
	return nil
}

// Unexpose stops serving name to the mesh. Connections already open stay up.
func (n *Node) Unexpose(name string) {
	n.mu.Lock()
	delete(n.services, name)
	h := n.host
	n.mu.Unlock()
	if h != nil {
		h.RemoveStreamHandler(serviceProtocol(name))
	}
	n.SetInfo(func(i *NodeInfo) { delete(i.Services, name) })
}

// serveStream connects an incoming service stream to the local service.
func (n *Node) serveStream(s network.Stream) {
	if !n.enter() {
		s.Reset()
		return
	}
	defer n.wg.Done()
	name := strings.TrimPrefix(string(s.Protocol()), serviceProtocolPrefix)
	n.mu.Lock()
	addr, ok := n.services[name]
	n.mu.Unlock()
	if !ok {
		s.Reset()
		return
	}
	c, err := net.DialTimeout("tcp", addr, serviceDialTimeout)
	if err != nil {
		n.log.Warn("exposed service unreachable", "service", name, "addr", addr, "err", err)
		s.Reset()
		return
	}
	// The service sees the connection come from this local address: it
	// can ask who is behind it (PeerOfConn).
	local := c.LocalAddr().String()
	n.streamPeers.Store(local, s.Conn().RemotePeer().String())
	defer n.streamPeers.Delete(local)
	n.pipe(c, s, nil)
}

// PeerOfConn says which peer a connection to an exposed service comes
// from, by the connection's remote address as the service sees it
// (http.Request.RemoteAddr); ok is false for connections that did not
// come through the mesh.
func (n *Node) PeerOfConn(remoteAddr string) (peerID string, ok bool) {
	v, ok := n.streamPeers.Load(remoteAddr)
	if !ok {
		return "", false
	}
	return v.(string), true
}

// Tunnel is a local listener whose connections are carried to a peer's
// service, one libp2p stream each.
type Tunnel struct {
	n       *Node
	peer    peer.ID
	service string
	ln      net.Listener
	ctx     context.Context
	cancel  context.CancelFunc
	stats   counters

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
	once   sync.Once
}

// Dial makes the service name of peer peerID reachable on a local address
// (127.0.0.1, a free port; see Tunnel.Addr). It connects to the peer first, so
// an unreachable peer is an error here rather than on first use. A peer not
// connected yet (Dial called right after Up, before the bootstrap connection)
// is waited for while ctx allows, or at most 30 s if ctx has no deadline.
func (n *Node) Dial(ctx context.Context, peerID, name string) (*Tunnel, error) {
	if err := checkServiceName(name); err != nil {
		return nil, err
	}
	pid, err := peer.Decode(peerID)
	if err != nil {
		return nil, fmt.Errorf("peer id %q: %w", peerID, err)
	}
	if pid == n.id {
		return nil, errors.New("cannot dial a service of this node itself: use its local address")
	}
	h := n.getHost()
	if h == nil {
		return nil, errors.New("netmesh: node is not up")
	}
	if err := n.reach(ctx, h, pid); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tunnel listener: %w", err)
	}
	t := &Tunnel{n: n, peer: pid, service: name, ln: ln, conns: map[net.Conn]struct{}{}}
	t.ctx, t.cancel = context.WithCancel(context.Background())

	n.mu.Lock()
	if n.stopping || n.state != stateRunning {
		n.mu.Unlock()
		t.cancel()
		ln.Close()
		return nil, ErrClosed
	}
	n.tunnels[t] = struct{}{}
	n.wg.Add(1)
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		t.acceptLoop()
	}()
	return t, nil
}

// Addr is the local address (host:port) to connect to.
func (t *Tunnel) Addr() string { return t.ln.Addr().String() }

// Peer is the peer ID at the other end.
func (t *Tunnel) Peer() string { return t.peer.String() }

// Service is the name of the service at the other end.
func (t *Tunnel) Service() string { return t.service }

// Stats counts this tunnel's traffic.
func (t *Tunnel) Stats() TunnelStats { return t.stats.snapshot() }

// Close stops listening and drops the tunnel's open connections. It is safe to
// call more than once.
func (t *Tunnel) Close() error {
	var err error
	t.once.Do(func() {
		err = t.ln.Close()
		t.cancel()
		t.mu.Lock()
		t.closed = true
		for c := range t.conns {
			c.Close()
		}
		t.mu.Unlock()
		t.wg.Wait()
		t.n.mu.Lock()
		delete(t.n.tunnels, t)
		t.n.mu.Unlock()
	})
	return err
}

func (t *Tunnel) acceptLoop() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return // closed
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.Close()
			return
		}
		t.conns[c] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go func() {
			defer t.wg.Done()
			t.forward(c)
			t.mu.Lock()
			delete(t.conns, c)
			t.mu.Unlock()
		}()
	}
}

func (t *Tunnel) forward(c net.Conn) {
	ctx, cancel := context.WithTimeout(limitedOK(t.ctx), streamOpenTimeout)
	s, err := t.n.getHost().NewStream(ctx, t.peer, serviceProtocol(t.service))
	cancel()
	if err != nil {
		t.n.log.Warn("tunnel: cannot reach service", "peer", t.peer.String(), "service", t.service, "err", err)
		c.Close()
		return
	}
	// Closing the tunnel resets its streams: a peer that keeps its end open
	// must not keep Close waiting.
	stop := context.AfterFunc(t.ctx, func() { s.Reset() })
	defer stop()
	t.n.pipe(c, s, &t.stats)
}

// pipe copies both ways between a local TCP connection and a stream until both
// directions end, passing half-closes through: EOF on one side becomes
// CloseWrite on the other. An error on either side tears down both.
func (n *Node) pipe(local net.Conn, s network.Stream, tc *counters) {
	n.stats.streams.Add(1)
	n.stats.active.Add(1)
	defer n.stats.active.Add(-1)
	if tc != nil {
		tc.streams.Add(1)
		tc.active.Add(1)
		defer tc.active.Add(-1)
	}
	var sent, received []*atomic.Uint64
	sent = append(sent, &n.stats.sent)
	received = append(received, &n.stats.received)
	if tc != nil {
		sent = append(sent, &tc.sent)
		received = append(received, &tc.received)
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := copyCounted(local, s, received); err != nil {
			s.Reset()
			local.Close()
			return
		}
		closeWrite(local)
	}()
	if err := copyCounted(s, local, sent); err != nil {
		s.Reset()
		local.Close()
	} else {
		s.CloseWrite()
	}
	wg.Wait()
	local.Close()
	s.Close()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

// copyCounted copies src to dst until EOF (returning nil) or an error.
func copyCounted(dst io.Writer, src io.Reader, counters []*atomic.Uint64) error {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := dst.Write(buf[:nr])
			for _, c := range counters {
				c.Add(uint64(nw))
			}
			if werr != nil {
				return werr
			}
			if nw != nr {
				return io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}
