// Package lab is a home lab in a box: it runs `potluck run` nodes as the
// machines of a LAN, one network namespace each, wired by veth pairs (or TAP
// relays) to a bridge that lives in a namespace of its own, so the host's
// interfaces never carry a packet. A test kills nodes, pauses them like a
// sleeping laptop, unplugs and replugs their cables, and delays or drops
// their frames, while it reads each node's /api/status, /api/peers and
// /metrics through a client that dials from inside the node's namespace.
//
// It needs root and iproute2; New skips the test otherwise.
package lab

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/netmesh"
)

const (
	// Subnet is the LAN's address range. It exists only inside the lab's
	// namespaces.
	Subnet = "10.77.0.0/24"
	// APIAddr is where every node's API listens, on the loopback of its own
	// namespace.
	APIAddr = "127.0.0.1:8080"
	// P2PPort is every node's libp2p TCP port, on its LAN address.
	P2PPort = 4001
	// Heartbeat is the mesh heartbeat the nodes run with unless
	// Options.Env sets POTLUCK_P2P_HEARTBEAT.
	Heartbeat = time.Second
)

// Options shape a lab.
type Options struct {
	// Token is the invite token every node joins with; empty: a new one.
	// A node's Args may give another --token (the last flag wins).
	Token string
	// Env is added to every node's environment.
	Env []string
	// Args returns extra `potluck run` flags for node i, placed after the
	// lab's own so they override them.
	Args func(i int) []string
	// Shaped lists the nodes whose links Netem will shape. On a kernel
	// without tc netem their links are TAP relays that the test process
	// delays and drops frames on.
	Shaped []int
	// Hold lists nodes New wires up but does not start: the test starts
	// them with Node.Start, e.g. to time a late joiner or to give flags
	// known only once other nodes run.
	Hold []int
	// Ready is how long each node gets to answer on its API; default 60s.
	Ready time.Duration
}

// Lab is a LAN of Potluck nodes. Everything it creates is removed when the
// test ends, whether it passed or not.
type Lab struct {
	t      testing.TB
	opts   Options
	bin    string
	token  string
	bridge string // the namespace holding the bridge
	netem  bool   // the kernel has tc's netem qdisc
	// internet: built by NewInternet (bridge is the public segment).
	internet bool

	mu         sync.Mutex
	namespaces []string // created, to delete

	// Nodes are the machines of the LAN, in the order of their addresses.
	Nodes []*Node
}

var (
	labSeq atomic.Int64
	subnet = netip.MustParsePrefix(Subnet)
)

// nodeIP is the LAN address of node i: .10, .11, … of Subnet.
func nodeIP(i int) string {
	a := subnet.Addr().As4()
	a[3] = byte(10 + i)
	return netip.AddrFrom4(a).String()
}

// New builds a LAN of n namespaces and starts one `potluck run` in each,
// waiting until every node's API answers. It skips the test when not root or
// when iproute2 is missing.
func New(t testing.TB, n int, opts Options) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root to create network namespaces (run `sudo make lab`)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the lab needs the ip command: apt-get install iproute2")
	}
	if n < 1 || n > 200 {
		t.Fatalf("lab.New: %d nodes; want 1 to 200", n)
	}
	opts, base := begin(t, opts)
	// The data dirs are removed after teardown, which is registered later
	// and so runs first: nothing writes to them any more by then.
	dataRoot := t.TempDir()
	l := &Lab{t: t, opts: opts, bin: nodetest.Binary(t), token: opts.Token, bridge: base + "-lan"}
	t.Cleanup(l.teardown)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	roomForNeighbours(t, n*n)
	must(l.addNS(l.bridge))
	must(ipCmd("-n", l.bridge, "link", "set", "lo", "up"))
	must(ipCmd("-n", l.bridge, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"))
	must(ipCmd("-n", l.bridge, "link", "set", "br0", "up"))
	if len(opts.Shaped) > 0 {
		l.netem = netemWorks(l.bridge)
	}
	for i := range n {
		node := &Node{Index: i, Name: fmt.Sprintf("node%d", i), NS: fmt.Sprintf("%s-n%d", base, i),
			IP: nodeIP(i), DataDir: filepath.Join(dataRoot, fmt.Sprintf("node%d", i)), lab: l, logs: &nodetest.Logs{Max: 2000}}
		must(os.Mkdir(node.DataDir, 0o700))
		node.Client = &http.Client{Transport: &http.Transport{
			DialContext:         nsDialer(node.NS),
			Proxy:               nil,
			MaxIdleConnsPerHost: 32,
			DisableCompression:  true,
		}}
		l.Nodes = append(l.Nodes, node)
		must(l.addNS(node.NS))
		must(ipCmd("-n", node.NS, "link", "set", "lo", "up"))
		if slices.Contains(opts.Shaped, i) && !l.netem {
			must(l.relayLink(node))
		} else {
			must(l.vethLink(node))
		}
		must(ipCmd("-n", node.NS, "addr", "add", fmt.Sprintf("%s/%d", node.IP, subnet.Bits()), "dev", "lan0"))
		must(ipCmd("-n", node.NS, "link", "set", "lan0", "up"))
		// mDNS sends to 224.0.0.251 and needs a route for it.
		must(ipCmd("-n", node.NS, "route", "add", "224.0.0.0/4", "dev", "lan0"))
	}
	for _, node := range l.Nodes {
		if !slices.Contains(opts.Hold, node.Index) {
			node.start(nil)
		}
	}
	for _, node := range l.Nodes {
		if !slices.Contains(opts.Hold, node.Index) {
			node.waitAPI()
		}
	}
	return l
}

// begin fills in opts' defaults, removes what crashed runs left, and
// names the new lab's namespaces: it returns their common prefix.
func begin(t testing.TB, opts Options) (Options, string) {
	t.Helper()
	if opts.Ready == 0 {
		opts.Ready = 60 * time.Second
	}
	if opts.Token == "" {
		tok, err := netmesh.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		opts.Token = tok
	}
	if removed := removeLeftovers(); len(removed) > 0 {
		t.Logf("removed namespaces left by an earlier run: %s", strings.Join(removed, " "))
	}
	return opts, fmt.Sprintf("%s%d-%d", namePrefix, os.Getpid(), labSeq.Add(1))
}

// addNS creates a namespace and remembers to delete it.
func (l *Lab) addNS(name string) error {
	if err := ipCmd("netns", "add", name); err != nil {
		return err
	}
	l.mu.Lock()
	l.namespaces = append(l.namespaces, name)
	l.mu.Unlock()
	return nil
}

// Token is the invite token of the lab's network.
func (l *Lab) Token() string { return l.token }

// NetemKind says how Netem shapes node i's link: "tc netem" or "relay".
func (l *Lab) NetemKind(i int) string {
	if l.Nodes[i].relay != nil {
		return "relay"
	}
	return "tc netem"
}

// vethLink plugs node into the bridge with a veth pair: lan0 in the node's
// namespace, p<i> on the bridge.
func (l *Lab) vethLink(node *Node) error {
	port := node.port()
	if err := ipCmd("-n", l.bridge, "link", "add", port, "type", "veth", "peer", "name", "lan0", "netns", node.NS); err != nil {
		return err
	}
	if err := ipCmd("-n", l.bridge, "link", "set", port, "master", "br0"); err != nil {
		return err
	}
	return ipCmd("-n", l.bridge, "link", "set", port, "up")
}

// relayLink plugs node into the bridge through two TAP devices joined by
// the test process.
func (l *Lab) relayLink(node *Node) error {
	nodeTap, err := openTap(node.NS, "lan0")
	if err != nil {
		return err
	}
	port := node.port()
	lanTap, err := openTap(l.bridge, port)
	if err != nil {
		nodeTap.Close()
		return err
	}
	node.relay = newRelay(nodeTap, lanTap)
	if err := ipCmd("-n", l.bridge, "link", "set", port, "master", "br0"); err != nil {
		return err
	}
	return ipCmd("-n", l.bridge, "link", "set", port, "up")
}

// netemWorks says whether the kernel has the netem qdisc.
func netemWorks(ns string) bool {
	if _, err := exec.LookPath("tc"); err != nil {
		return false
	}
	if tcCmd(ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms") != nil {
		return false
	}
	_ = tcCmd(ns, "qdisc", "del", "dev", "lo", "root")
	return true
}

// teardown stops every node and removes the relays and namespaces.
func (l *Lab) teardown() {
	if l.t.Failed() {
		l.snapshot()
	}
	var wg sync.WaitGroup
	for _, n := range l.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.stop()
		}()
	}
	wg.Wait()
	if l.t.Failed() {
		lines := 60
		if n, err := strconv.Atoi(os.Getenv("POTLUCK_LAB_DUMP_LINES")); err == nil && n > 0 {
			lines = n // more, to debug a scenario
		}
		l.Dump(lines)
	}
	for _, n := range l.Nodes {
		n.Client.CloseIdleConnections()
		if n.relay != nil {
			n.relay.close()
		}
	}
	l.mu.Lock()
	namespaces := l.namespaces
	l.namespaces = nil
	l.mu.Unlock()
	for _, ns := range namespaces {
		if err := deleteNS(ns); err != nil {
			l.t.Errorf("teardown: %v", err)
		}
	}
}

// snapshot logs what each running node says of its plan and its peers,
// for a failed test.
func (l *Lab) snapshot() {
	for _, n := range l.Nodes {
		for _, path := range []string{"/api/plan", "/api/peers"} {
			var v json.RawMessage
			if err := n.GetJSON(path, &v); err != nil {
				continue
			}
			s := string(v)
			if len(s) > 4000 {
				s = s[:4000] + "…"
			}
			l.t.Logf("--- %s GET %s: %s", n.Name, path, s)
		}
		// The machine's TCP sockets: which ports its dials left from,
		// and what lingers (SYN-SENT, TIME-WAIT) in the way of the next.
		if out, err := exec.Command("ip", "netns", "exec", n.NS, "ss", "-tan").Output(); err == nil {
			l.t.Logf("--- %s ss -tan:\n%s", n.Name, out)
		}
	}
}

// Dump logs the last lines of every node's output, leaving out the API's
// request lines (the test's own polling).
func (l *Lab) Dump(lines int) {
	for _, n := range l.Nodes {
		l.t.Logf("--- %s (%s, %s), last %d lines:\n%s", n.Name, n.NS, n.IP, lines, n.Quiet(lines))
	}
}

// Wait polls cond every 100ms until it holds and returns how long that took.
// It fails the test after within.
func (l *Lab) Wait(what string, within time.Duration, cond func() bool) time.Duration {
	l.t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > within {
			l.t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
