package lab

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/internal/nodetest"
)

// An internet in a box: a "public" segment (a bridge in a namespace of its
// own) with members on it, and home LANs, each a single machine behind a
// router namespace that does NAT with nftables. The public segment uses
// WANSubnet, a range libp2p counts as public, so that its address logic
// behaves as on the internet; like every lab address it exists only inside
// the namespaces the lab creates, none of which has a link to the host.

// WANSubnet is the public segment's range.
const WANSubnet = "11.77.0.0/24"

// NAT kinds of a home router.
const (
	// NATEndpointIndependent maps a LAN address and port to the same
	// public port whatever the destination (Linux masquerade keeps the
	// source port), and admits replies only: hole punching works.
	NATEndpointIndependent = "endpoint-independent"
	// NATSymmetric picks a new random public port for every destination:
	// the port a peer observed is useless to others, so hole punching
	// fails and only a relay connects.
	NATSymmetric = "symmetric"
)

// Site is one machine of an internet lab: on the public segment (NAT
// "") or alone on a home LAN behind a NAT of the given kind.
type Site struct {
	Name string
	NAT  string
}

// NewInternet builds the sites and wires them; it starts no node (every
// node is held: start them with Node.Start, e.g. with an invite only
// known once others run). Nodes listen on netmesh.DefaultPort.
func NewInternet(t testing.TB, sites []Site, opts Options) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root to create network namespaces (run `sudo make lab`)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the internet lab needs %s: apt-get install iproute2 nftables", tool)
		}
	}
	opts, base := begin(t, opts)
	dataRoot := t.TempDir()
	l := &Lab{t: t, opts: opts, bin: nodetest.Binary(t), token: opts.Token, bridge: base + "-wan", internet: true}
	t.Cleanup(l.teardown)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.addNS(l.bridge))
	must(ipCmd("-n", l.bridge, "link", "set", "lo", "up"))
	must(ipCmd("-n", l.bridge, "link", "add", "br0", "type", "bridge"))
	must(ipCmd("-n", l.bridge, "link", "set", "br0", "up"))
	homes := 0
	for i, s := range sites {
		node := &Node{Index: i, Name: s.Name, NS: fmt.Sprintf("%s-n%d", base, i),
			DataDir: filepath.Join(dataRoot, s.Name), lab: l, logs: &nodetest.Logs{Max: 2000}, NAT: s.NAT}
		must(os.Mkdir(node.DataDir, 0o700))
		node.Client = &http.Client{Transport: &http.Transport{DialContext: nsDialer(node.NS), Proxy: nil, DisableCompression: true}}
		l.Nodes = append(l.Nodes, node)
		must(l.addNS(node.NS))
		must(ipCmd("-n", node.NS, "link", "set", "lo", "up"))
		if s.NAT == "" {
			node.IP = fmt.Sprintf("11.77.0.%d", 10+i)
			must(l.wanLink(node.NS, node.port(), node.IP))
		} else {
			homes++
			must(l.home(node, fmt.Sprintf("%s-r%d", base, i), homes, s.NAT))
		}
		must(ipCmd("-n", node.NS, "route", "add", "224.0.0.0/4", "dev", "lan0"))
	}
	return l
}

// wanLink plugs namespace ns into the public segment as lan0 (or dev) with
// address ip.
func (l *Lab) wanLink(ns, port, ip string) error {
	return l.plug(ns, port, "lan0", ip)
}

func (l *Lab) plug(ns, port, dev, ip string) error {
	if err := ipCmd("-n", l.bridge, "link", "add", port, "type", "veth", "peer", "name", dev, "netns", ns); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"-n", l.bridge, "link", "set", port, "master", "br0"},
		{"-n", l.bridge, "link", "set", port, "up"},
		{"-n", ns, "addr", "add", ip + "/24", "dev", dev},
		{"-n", ns, "link", "set", dev, "up"},
	} {
		if err := ipCmd(args...); err != nil {
			return err
		}
	}
	return nil
}

// WANDelay is the one-way delay of each home's uplink: two homes are
// 20 ms apart, as across a city's providers. Hole punching needs some: with
// none, a peer's punch could reach this node's listener a moment before
// this node's own dial, which then finds its port pair taken.
const WANDelay = 10 * time.Millisecond

// uplink plugs router namespace ns into the public segment as wan0, with
// address ip, through a relay that delays every frame by WANDelay. The
// relay is node's: Netem changes it, and the lab closes it.
func (l *Lab) uplink(node *Node, ns, port, ip string) error {
	wan, err := openTap(ns, "wan0")
	if err != nil {
		return err
	}
	seg, err := openTap(l.bridge, port)
	if err != nil {
		wan.Close()
		return err
	}
	node.relay = newRelay(wan, seg)
	node.relay.set(Impairment{Delay: WANDelay})
	for _, args := range [][]string{
		{"-n", l.bridge, "link", "set", port, "master", "br0"},
		{"-n", l.bridge, "link", "set", port, "up"},
		{"-n", ns, "addr", "add", ip + "/24", "dev", "wan0"},
		{"-n", ns, "link", "set", "wan0", "up"},
	} {
		if err := ipCmd(args...); err != nil {
			return err
		}
	}
	return nil
}

// home puts node alone on a LAN behind router namespace r: the router's
// wan0 is on the public segment at 11.77.0.<1+k>, its lan0 is 192.168.<k>.1,
// the node is 192.168.<k>.10.
func (l *Lab) home(node *Node, r string, k int, nat string) error {
	if err := l.addNS(r); err != nil {
		return err
	}
	node.Router = r
	node.WANIP = fmt.Sprintf("11.77.0.%d", 1+k)
	node.IP = fmt.Sprintf("192.168.%d.10", k)
	if err := ipCmd("-n", r, "link", "set", "lo", "up"); err != nil {
		return err
	}
	if err := l.uplink(node, r, "r"+node.port(), node.WANIP); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"-n", r, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0", "netns", node.NS},
		{"-n", r, "addr", "add", fmt.Sprintf("192.168.%d.1/24", k), "dev", "lan0"},
		{"-n", r, "link", "set", "lan0", "up"},
		{"-n", node.NS, "addr", "add", node.IP + "/24", "dev", "lan0"},
		{"-n", node.NS, "link", "set", "lan0", "up"},
		{"-n", node.NS, "route", "add", "default", "via", fmt.Sprintf("192.168.%d.1", k)},
	} {
		if err := ipCmd(args...); err != nil {
			return err
		}
	}
	if err := nsRun(r, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"); err != nil {
		return err
	}
	masq := "masquerade"
	if nat == NATSymmetric {
		masq = "masquerade fully-random"
	}
	// A home router: the LAN goes out with its address rewritten; from
	// outside only replies come in, and anything else is dropped without
	// an answer, as home routers do (an answer, a TCP reset, would end a
	// hole punch whose packets cross).
	rules := fmt.Sprintf(`table ip nat {
	chain outbound { type nat hook postrouting priority srcnat; oifname "wan0" %s; }
}
table ip filter {
	chain local { type filter hook input priority filter;
		iifname "wan0" ct state new drop
	}
	chain routed { type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "lan0" oifname "wan0" accept
	}
}
`, masq)
	return nsRunInput(r, rules, "nft", "-f", "-")
}

func nsRun(ns string, args ...string) error { return nsRunInput(ns, "", args...) }

func nsRunInput(ns, input string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	if input != "" {
		cmd.Stdin = strings.NewReader(input)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("in %s: %s: %v: %s", ns, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Stop ends the node gracefully (SIGTERM), as a user quitting it does.
func (n *Node) Stop() { n.stop() }
