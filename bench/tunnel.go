package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"time"

	"github.com/potluck-gpu/potluck/netmesh"
)

const (
	modeSink = 'S' // then an 8-byte length; that many bytes; answered with one byte
	modeEcho = 'E' // everything sent comes back

	transferBytes = 256 << 20 // per throughput run
	warmupBytes   = 32 << 20
	rttRounds     = 2000 // timed round trips per RTT run
	rttMessage    = 64
)

// serveBench serves the sink and echo protocols on 127.0.0.1. Both work
// without TCP half-close, which EdgeVPN's tunnel does not pass on.
func serveBench() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handleBench(c)
		}
	}()
	return ln.Addr().String(), func() { ln.Close() }, nil
}

func handleBench(c net.Conn) {
	defer c.Close()
	var mode [1]byte
	if _, err := io.ReadFull(c, mode[:]); err != nil {
		return
	}
	switch mode[0] {
	case modeSink:
		var n [8]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint64(n[:]))); err != nil {
			return
		}
		c.Write([]byte{1})
	case modeEcho:
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
}

// throughput sends n bytes to the sink at addr and returns MiB/s, timed
// until the sink confirms it has them all.
func throughput(addr string, n int64) (float64, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, 1<<20)
	start := time.Now()
	head := make([]byte, 9)
	head[0] = modeSink
	binary.BigEndian.PutUint64(head[1:], uint64(n))
	if _, err := c.Write(head); err != nil {
		return 0, err
	}
	for sent := int64(0); sent < n; {
		k := min(int64(len(buf)), n-sent)
		if _, err := c.Write(buf[:k]); err != nil {
			return 0, err
		}
		sent += k
	}
	if _, err := io.ReadFull(c, buf[:1]); err != nil {
		return 0, fmt.Errorf("no confirmation from the sink: %w", err)
	}
	return float64(n) / (1 << 20) / time.Since(start).Seconds(), nil
}

// rtt returns the median round trip of a 64-byte message to the echo at addr.
func rtt(addr string) (time.Duration, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.Write([]byte{modeEcho}); err != nil {
		return 0, err
	}
	buf := make([]byte, rttMessage)
	samples := make([]time.Duration, 0, rttRounds)
	for i := range 200 + rttRounds {
		t := time.Now()
		if _, err := c.Write(buf); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return 0, err
		}
		if i >= 200 { // the first ones warm the path up
			samples = append(samples, time.Since(t))
		}
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	return samples[len(samples)/2], nil
}

// echoWorks reports whether one message makes it through the echo at addr.
func echoWorks(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte{modeEcho, 'p', 'i', 'n', 'g'}); err != nil {
		return false
	}
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	return err == nil && string(buf) == "ping"
}

// startMeshNode runs an in-process netmesh node on loopback.
func (b *bench) startMeshNode(token, name string, bootstrap []string) (*netmesh.Node, error) {
	dir, err := os.MkdirTemp(b.tmp, "mesh-")
	if err != nil {
		return nil, err
	}
	n, err := netmesh.New(netmesh.Config{
		Token:       token,
		DataDir:     dir,
		Name:        name,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		Bootstrap:   bootstrap,
		DisableDHT:  true,
		AppVersion:  "bench",
	}, nil)
	if err != nil {
		return nil, err
	}
	runErr := make(chan error, 1)
	go func() { runErr <- n.Run(context.Background()) }()
	b.cleanup(func() { n.Close(); <-runErr })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Up(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// meshPair is two in-process netmesh nodes: services exposed on one are
// dialed from the other.
type meshPair struct{ exposer, dialer *netmesh.Node }

func (b *bench) newMeshPair() (*meshPair, error) {
	token, err := netmesh.NewToken()
	if err != nil {
		return nil, err
	}
	e, err := b.startMeshNode(token, "exposer", nil)
	if err != nil {
		return nil, err
	}
	d, err := b.startMeshNode(token, "dialer", e.Addrs())
	if err != nil {
		return nil, err
	}
	return &meshPair{exposer: e, dialer: d}, nil
}

// tunnel exposes addr under name and returns the local address of a tunnel
// to it, closed when the section ends.
func (b *bench) tunnel(m *meshPair, name, addr string) (string, error) {
	if err := m.exposer.Expose(name, addr); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t, err := m.dialer.Dial(ctx, m.exposer.ID(), name)
	if err != nil {
		return "", err
	}
	b.cleanup(func() { closeTunnel(t) })
	return t.Addr(), nil
}

// closeTunnel closes t, waiting at most 5 s: Tunnel.Close blocks for as long
// as a connection whose client has gone stays open at the service's end.
func closeTunnel(t *netmesh.Tunnel) {
	done := make(chan struct{})
	go func() { t.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		fmt.Fprintf(os.Stderr, "bench: closing the tunnel to %s is stuck; left behind\n", t.Service())
	}
}

type tunnelPath struct {
	name string
	addr string
	mibs []float64
	rtts []float64 // µs
}

func (b *bench) benchTunnel(ctx context.Context) {
	const sec = "tunnel"
	addr, stopServer, err := serveBench()
	if err != nil {
		b.report.fail(sec, "tunnel", err)
		return
	}
	b.cleanup(stopServer)

	pair, err := b.newMeshPair()
	if err != nil {
		b.report.fail(sec, "Potluck tunnel", err)
		return
	}
	tun, err := b.tunnel(pair, "bench", addr)
	if err != nil {
		b.report.fail(sec, "Potluck tunnel", err)
		return
	}

	paths := []*tunnelPath{{name: "raw", addr: addr}, {name: "potluck", addr: tun}}

	ev, everr := startEdgeVPNTunnel(ctx, addr)
	if everr == nil {
		b.cleanup(ev.close)
		paths = append(paths, &tunnelPath{name: "edgevpn", addr: ev.addr})
	}

	for _, p := range paths {
		if _, err := throughput(p.addr, warmupBytes); err != nil {
			b.report.fail(sec, p.name+" tunnel warm-up", err)
			return
		}
	}
	for range b.runs {
		for _, p := range paths {
			if ctx.Err() != nil {
				return
			}
			v, err := throughput(p.addr, transferBytes)
			if err != nil {
				b.report.fail(sec, p.name+" throughput", err)
				return
			}
			p.mibs = append(p.mibs, v)
			d, err := rtt(p.addr)
			if err != nil {
				b.report.fail(sec, p.name+" RTT", err)
				return
			}
			p.rtts = append(p.rtts, float64(d)/float64(time.Microsecond))
		}
	}
	raw, ours := paths[0], paths[1]
	rawT, ourT := median(raw.mibs), median(ours.mibs)
	rawR, ourR := median(raw.rtts), median(ours.rtts)
	b.report.add(Figure{
		Section: sec, Name: "throughput, Potluck tunnel", Unit: "MiB/s",
		Value: ourT, Runs: round(ours.mibs, 0), Anchor: "raw TCP", AnchorValue: rawT, AnchorRuns: round(raw.mibs, 0),
		Relation: fmt.Sprintf("%.2fx raw", ourT/rawT), Target: ">= 0.5x raw", Met: met(ourT >= 0.5*rawT),
		Note: fmt.Sprintf("%d MiB one way per run over one TCP connection, 2 in-process nodes on 127.0.0.1", transferBytes>>20),
	})
	b.report.add(Figure{
		Section: sec, Name: "RTT (64 B echo), Potluck tunnel", Unit: "µs",
		Value: ourR, Runs: round(ours.rtts, 1), Anchor: "raw TCP", AnchorValue: rawR, AnchorRuns: round(raw.rtts, 1),
		Relation: fmt.Sprintf("%+.0f µs", ourR-rawR), Target: "<= +60 µs", Met: met(ourR-rawR <= 60),
	})
	if everr != nil {
		b.report.fail(sec, "EdgeVPN default tunnel", everr)
		return
	}
	e := paths[2]
	evT, evR := median(e.mibs), median(e.rtts)
	b.report.add(Figure{
		Section: sec, Name: "throughput vs EdgeVPN", Unit: "MiB/s",
		Value: ourT, Runs: round(ours.mibs, 0), Anchor: "EdgeVPN default", AnchorValue: evT, AnchorRuns: round(e.mibs, 0),
		Relation: fmt.Sprintf("%.2fx EdgeVPN (EdgeVPN %.2fx raw)", ourT/evT, evT/rawT),
		Note:     "EdgeVPN v0.35.3 services expose/connect, default libp2p stack; connection over " + ev.transport() + "; usable " + ev.ready.Round(time.Millisecond).String() + " after start",
	})
	b.report.add(Figure{
		Section: sec, Name: "RTT vs EdgeVPN", Unit: "µs",
		Value: ourR, Runs: round(ours.rtts, 1), Anchor: "EdgeVPN default", AnchorValue: evR, AnchorRuns: round(e.rtts, 1),
		Relation: fmt.Sprintf("%+.0f µs (EdgeVPN %+.0f µs vs raw)", ourR-evR, evR-rawR),
	})
}
