package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/potluck-gpu/potluck/netmesh"
)

// evProc is an EdgeVPN node in a child process (the benchmark binary run
// as edgevpnNodeArg).
type evProc struct {
	*child
	stdin io.Closer
	id    string
	addrs []string

	mu   sync.Mutex
	seen map[string]time.Time // peer id -> when this node first listed it
	news chan struct{}        // signalled on every new line
}

func (b *bench) startEdgeVPNProc(token string, bootstrap []string, expect int, tcpOnly bool) (*evProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, edgevpnNodeArg, "-token", token, "-bootstrap", strings.Join(bootstrap, ","), "-expect", fmt.Sprint(expect), fmt.Sprintf("-tcp-only=%v", tcpOnly))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	c, err := startChild("edgevpn node", cmd)
	if err != nil {
		return nil, err
	}
	p := &evProc{child: c, stdin: stdin, seen: map[string]time.Time{}, news: make(chan struct{}, 1)}
	b.cleanup(func() { stdin.Close(); p.stop(syscall.SIGTERM, 10*time.Second) })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			kind, v, _ := strings.Cut(sc.Text(), " ")
			p.mu.Lock()
			switch kind {
			case "id":
				p.id = v
			case "addr":
				p.addrs = append(p.addrs, v)
				once.Do(func() { close(ready) })
			case "seen":
				p.seen[v] = time.Now()
			}
			p.mu.Unlock()
			select {
			case p.news <- struct{}{}:
			default:
			}
		}
	}()
	select {
	case <-ready:
	case <-c.Exited():
		return nil, c.failure(fmt.Errorf("exited: %v", c.Err()))
	case <-time.After(30 * time.Second):
		p.stop(syscall.SIGKILL, time.Second)
		return nil, c.failure(fmt.Errorf("no address after 30s"))
	}
	time.Sleep(20 * time.Millisecond) // let the remaining address lines arrive
	return p, nil
}

func (p *evProc) sawPeer(id string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.seen[id]
	return t, ok
}

func (p *evProc) seenCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.seen)
}

func (p *evProc) peerID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.id
}

// tcpAddrs are the node's TCP multiaddrs, for bootstrapping others.
func (p *evProc) bootAddrs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.addrs...)
}

// benchJoin measures how long after a node starts another node lists it as
// online: Potluck processes joined by --bootstrap, EdgeVPN default nodes
// bootstrapped the same way.
func (b *bench) benchJoin(ctx context.Context) {
	const sec = "join"
	token, err := netmesh.NewToken()
	if err != nil {
		b.report.fail(sec, "join time", err)
		return
	}
	a, err := b.startPotluck("join-a", nil, meshArgs(token)...)
	if err != nil {
		b.report.fail(sec, "join time", err)
		return
	}
	st, err := a.meshStatus()
	if err != nil {
		b.report.fail(sec, "join time", err)
		return
	}
	var ours []float64
	for i := range b.runs {
		if ctx.Err() != nil {
			return
		}
		name := fmt.Sprintf("join-b%d", i)
		start := time.Now()
		nb, err := b.startPotluck(name, nil, meshArgs(token, "--bootstrap", st.P2PAddrs[0])...)
		if err != nil {
			b.report.fail(sec, "join time", err)
			return
		}
		err = a.waitFor(20*time.Second, 10*time.Millisecond, name+" online in /api/peers", func() bool {
			ps, err := a.peers()
			if err != nil {
				return false
			}
			for _, p := range ps {
				if p.Name == name && p.Online {
					return true
				}
			}
			return false
		})
		if err != nil {
			b.report.fail(sec, "join time", err)
			return
		}
		ours = append(ours, time.Since(start).Seconds())
		nb.stop(syscall.SIGINT, 15*time.Second)
	}

	evTimes, everr := b.edgevpnJoin(ctx)
	f := Figure{
		Section: sec, Name: "join: peer online at another node", Unit: "s",
		Value: median(ours), Runs: round(ours, 3), Target: "<= 2 s", Met: met(median(ours) <= 2),
		Note: "from starting `potluck run --bootstrap A` until A's /api/peers lists it online (process start included); EdgeVPN: until it is in A's ledger of available nodes (services.AvailableNodes)",
	}
	if everr != nil {
		b.report.add(f)
		b.report.fail(sec, "EdgeVPN join time", everr)
		return
	}
	f.Anchor, f.AnchorValue, f.AnchorRuns = "EdgeVPN default", median(evTimes), round(evTimes, 3)
	f.Relation = fmt.Sprintf("%.2fx EdgeVPN", f.Value/f.AnchorValue)
	b.report.add(f)
}

func (b *bench) edgevpnJoin(ctx context.Context) ([]float64, error) {
	token, err := netmesh.NewToken()
	if err != nil {
		return nil, err
	}
	a, err := b.startEdgeVPNProc(token, nil, 0, false)
	if err != nil {
		return nil, err
	}
	var times []float64
	for range b.runs {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		start := time.Now()
		nb, err := b.startEdgeVPNProc(token, a.bootAddrs(), 1, false)
		if err != nil {
			return nil, err
		}
		id := nb.peerID()
		var at time.Time
		err = a.waitFor(30*time.Second, 5*time.Millisecond, "the new EdgeVPN node in the ledger", func() bool {
			t, ok := a.sawPeer(id)
			at = t
			return ok
		})
		if err != nil {
			return nil, err
		}
		times = append(times, at.Sub(start).Seconds())
		nb.stdin.Close()
		nb.stop(syscall.SIGTERM, 10*time.Second)
	}
	return times, nil
}

// idleNode is one process measured while idle.
type idleNode struct {
	name string
	pid  int
	cpu0 time.Duration
	net0 tcpTraffic
}

// benchIdle runs three Potluck nodes and three EdgeVPN default nodes, each
// three in their own mesh, lets them settle, and measures each process's
// CPU time, RSS and the traffic of its TCP connections over a window.
func (b *bench) benchIdle(ctx context.Context) {
	const sec = "idle"
	token, err := netmesh.NewToken()
	if err != nil {
		b.report.fail(sec, "idle node", err)
		return
	}
	var ours []*potluck
	var boot string
	for i := range 3 {
		args := meshArgs(token)
		if i > 0 {
			args = append(args, "--bootstrap", boot)
		}
		p, err := b.startPotluck(fmt.Sprintf("idle-%d", i), nil, args...)
		if err != nil {
			b.report.fail(sec, "idle node", err)
			return
		}
		if i == 0 {
			st, err := p.meshStatus()
			if err != nil {
				b.report.fail(sec, "idle node", err)
				return
			}
			boot = st.P2PAddrs[0]
		}
		ours = append(ours, p)
	}
	evToken, err := netmesh.NewToken()
	if err != nil {
		b.report.fail(sec, "idle node", err)
		return
	}
	var evs []*evProc
	var evErr error
	for i := range 3 {
		var bootstrap []string
		if i > 0 {
			bootstrap = evs[0].bootAddrs()
		}
		p, err := b.startEdgeVPNProc(evToken, bootstrap, 2, true)
		if err != nil {
			evErr = err
			break
		}
		evs = append(evs, p)
	}
	for _, p := range ours {
		err := p.waitFor(30*time.Second, 100*time.Millisecond, "both peers online", func() bool {
			st, err := p.status()
			return err == nil && st.PeersOnline == 2
		})
		if err != nil {
			b.report.fail(sec, "idle node", err)
			return
		}
	}
	if evErr == nil {
		for _, p := range evs {
			if err := p.waitFor(60*time.Second, 100*time.Millisecond, "both peers in the ledger", func() bool { return p.seenCount() >= 2 }); err != nil {
				evErr = err
				break
			}
		}
	}
	// Settle: the join-time announcements and syncs are over.
	select {
	case <-ctx.Done():
		return
	case <-time.After(10 * time.Second):
	}

	var nodes []*idleNode
	for i, p := range ours {
		nodes = append(nodes, &idleNode{name: fmt.Sprintf("potluck-%d", i), pid: p.pid()})
	}
	if evErr == nil {
		for i, p := range evs {
			nodes = append(nodes, &idleNode{name: fmt.Sprintf("edgevpn-%d", i), pid: p.pid()})
		}
	}
	traffic0, terr := trafficByPID()
	start := time.Now()
	for _, n := range nodes {
		n.cpu0, _ = cpuTime(n.pid)
		n.net0 = traffic0[n.pid]
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(b.idle):
	}
	traffic1, terr1 := trafficByPID()
	elapsed := time.Since(start).Seconds()
	if terr == nil {
		terr = terr1
	}
	type sample struct{ cpu, rss, bps []float64 }
	res := map[string]*sample{"potluck": {}, "edgevpn": {}}
	for _, n := range nodes {
		kind, _, _ := strings.Cut(n.name, "-")
		s := res[kind]
		cpu1, err := cpuTime(n.pid)
		if err != nil {
			b.report.fail(sec, "idle "+n.name, err)
			return
		}
		rss, _ := rssBytes(n.pid)
		s.cpu = append(s.cpu, 100*(cpu1-n.cpu0).Seconds()/elapsed)
		s.rss = append(s.rss, float64(rss)/1e6)
		if terr == nil {
			t1 := traffic1[n.pid]
			s.bps = append(s.bps, float64(t1.Sent+t1.Received-n.net0.Sent-n.net0.Received)/elapsed)
		}
	}
	ourS, evS := res["potluck"], res["edgevpn"]
	win := fmt.Sprintf("3 nodes per mesh, median node over %v after settling", b.idle)
	figs := []Figure{
		{Section: sec, Name: "idle CPU per node", Unit: "%core", Value: median(ourS.cpu), Runs: round(ourS.cpu, 3),
			Target: "<= 0.5% core", Met: met(median(ourS.cpu) <= 0.5), Note: win + "; /proc/<pid>/stat, 10 ms resolution"},
		{Section: sec, Name: "idle RSS per node", Unit: "MB", Value: median(ourS.rss), Runs: round(ourS.rss, 1),
			Target: "<= 80 MB", Met: met(median(ourS.rss) <= 80), Note: "VmRSS of the potluck process (no model, share off); EdgeVPN's is the benchmark binary running one node"},
	}
	if terr == nil {
		figs = append(figs, Figure{Section: sec, Name: "idle mesh traffic per node", Unit: "B/s", Value: median(ourS.bps), Runs: round(ourS.bps, 0),
			Target: "<= 2 KB/s", Met: met(median(ourS.bps) <= 2000), Note: "TCP payload sent + received on the node's connections (ss -tinp bytes_sent/bytes_received), default 5 s heartbeat; the EdgeVPN nodes here listen on TCP only so that the same counters see their traffic"})
	} else {
		b.report.fail(sec, "idle mesh traffic per node", fmt.Errorf("ss: %w", terr))
	}
	for i := range figs {
		if evErr != nil {
			continue
		}
		var ev []float64
		switch i {
		case 0:
			ev = evS.cpu
		case 1:
			ev = evS.rss
		case 2:
			ev = evS.bps
		}
		figs[i].Anchor, figs[i].AnchorValue, figs[i].AnchorRuns = "EdgeVPN default", median(ev), round(ev, 3)
		figs[i].Relation = fmt.Sprintf("%.2fx EdgeVPN", figs[i].Value/figs[i].AnchorValue)
	}
	for _, f := range figs {
		b.report.add(f)
	}
	if evErr != nil {
		b.report.fail(sec, "EdgeVPN idle node", evErr)
	}
}
