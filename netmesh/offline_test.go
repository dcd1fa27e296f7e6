package netmesh_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/netmesh/netmeshtest"
)

// These tests use a heartbeat long enough that heartbeat expiry (about
// 3.5 heartbeats) comes well after offlineBound: a peer offline within
// the bound was found gone by its closed connection.
const (
	offlineHB    = 2 * time.Second
	offlineBound = 3 * time.Second
	// offlineWait is how long a test waits to measure a time it then
	// holds to offlineBound, so that a failure says how long it took.
	offlineWait = 15 * time.Second
)

// onlineAfter waits until viewer sees the peer id as online (want) or
// not (absent counts as not), and returns how long after since that was.
func onlineAfter(t *testing.T, viewer *netmesh.Node, id string, want bool, since time.Time) time.Duration {
	t.Helper()
	netmeshtest.WaitFor(t, offlineWait, func() bool {
		p, ok := viewer.Peer(id)
		return (ok && p.Online) == want
	}, "peer never became online="+map[bool]string{true: "true", false: "false"}[want])
	return time.Since(since)
}

// holdsOffline fails the test if viewer sees the peer id online at any
// moment during d.
func holdsOffline(t *testing.T, viewer *netmesh.Node, id string, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if p, ok := viewer.Peer(id); ok && p.Online {
			t.Fatalf("%s came back online with no sign of life", p.Name)
		}
	}
}

// A closed node is offline in the others' views within a second or two,
// not once three heartbeats were missed; started again, it is online again
// at once.
func TestClosedNodeOfflineAtOnce(t *testing.T) {
	netmeshtest.CheckLeaks(t)
	cfgs := make([]netmesh.Config, 3)
	nodes := netmeshtest.Cluster(t, 3, netmeshtest.WithHeartbeat(offlineHB),
		netmeshtest.WithConfig(func(i int, c *netmesh.Config) { cfgs[i] = *c }))
	netmeshtest.WaitConverged(t, nodes, offlineWait)
	gone := nodes[2].ID()

	closed := time.Now()
	if err := nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	for _, v := range nodes[:2] {
		took := onlineAfter(t, v, gone, false, closed)
		t.Logf("%s: the closed node was offline after %v (heartbeat %v)", v.Info().Name, took.Round(time.Millisecond), offlineHB)
		if took > offlineBound {
			t.Errorf("%s: the closed node was offline after %v, want within %v", v.Info().Name, took.Round(time.Millisecond), offlineBound)
		}
	}
	if p, _ := nodes[0].Peer(nodes[1].ID()); !p.Online {
		t.Error("node0 lost node1 as well")
	}

	restarted := time.Now()
	again := netmeshtest.Start(t, cfgs[2], nil)
	if again.ID() != gone {
		t.Fatalf("restarted with another peer id")
	}
	for _, v := range nodes[:2] {
		took := onlineAfter(t, v, gone, true, restarted)
		t.Logf("%s: the restarted node was online again after %v", v.Info().Name, took.Round(time.Millisecond))
		if took > offlineBound {
			t.Errorf("%s: the restarted node was online again after %v, want within %v", v.Info().Name, took.Round(time.Millisecond), offlineBound)
		}
	}
}

// childEnv carries a child node's configuration when the test binary runs
// as the node that TestKilledNodeOfflineAtOnce kills.
const childEnv = "NETMESH_TEST_CHILD_NODE"

// A node whose process is killed (no goodbye: the kernel closes its
// connections) is offline in the others' views within a second or two.
func TestKilledNodeOfflineAtOnce(t *testing.T) {
	if spec := os.Getenv(childEnv); spec != "" {
		runChildNode(t, spec)
		return
	}
	netmeshtest.CheckLeaks(t)
	tok, err := netmesh.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	nodes := netmeshtest.Cluster(t, 2, netmeshtest.WithToken(tok), netmeshtest.WithHeartbeat(offlineHB))
	cfg := netmeshtest.Config(t, tok, "child")
	cfg.HeartbeatInterval = offlineHB
	cfg.Bootstrap = nodes[0].Addrs()
	id := idOf(t, cfg)
	spec, err := json.Marshal(childSpec{Token: tok, DataDir: cfg.DataDir, Bootstrap: cfg.Bootstrap})
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledNodeOfflineAtOnce$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	stdin, err := cmd.StdinPipe() // the child leaves when it closes
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	t.Cleanup(func() {
		stdin.Close()
		if !waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	up := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "child node up" {
				up <- true
				break
			}
		}
		close(up)
		for sc.Scan() {
		}
	}()
	select {
	case ok := <-up:
		if !ok {
			t.Fatal("the child node did not start")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the child node did not start within 30s")
	}
	netmeshtest.WaitFor(t, offlineWait, func() bool {
		for _, v := range nodes {
			if p, ok := v.Peer(id); !ok || !p.Online {
				return false
			}
		}
		return true
	}, "the child node not online", func() string { return netmeshtest.Views(nodes) })

	// A node connected to the child sees its connection close; one that
	// hears of it through the others only (where the child could announce
	// no address to dial, as under Wine, which lists no interfaces) has
	// heartbeat expiry, about 3.5 heartbeats.
	connected := map[*netmesh.Node]bool{}
	for _, v := range nodes {
		p, _ := v.Peer(id)
		connected[v] = p.Conn != netmesh.ConnNone
	}
	if !connected[nodes[0]] {
		t.Fatalf("the child's bootstrap node has no connection to it:\n%s", netmeshtest.Views(nodes))
	}
	killed := time.Now()
	closed := make([]<-chan time.Duration, len(nodes))
	for i, v := range nodes {
		closed[i] = connClosed(t, v, id, killed, offlineWait)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	waited = true
	for i, v := range nodes {
		took := onlineAfter(t, v, id, false, killed)
		bound, how := offlineBound, "connected"
		if !connected[v] {
			bound, how = 4*offlineHB+time.Second, "through others only"
		}
		t.Logf("%s (%s): the killed node was offline after %v (heartbeat %v)", v.Info().Name, how, took.Round(time.Millisecond), offlineHB)
		if took <= bound {
			continue
		}
		// How long its connection lived on says whose fault it was: the
		// node's, or the system's, which did not close a dead process's
		// socket (then the node can only tell by heartbeat expiry).
		var cl string
		if d := <-closed[i]; d < 0 {
			cl = fmt.Sprintf("its connection to the killed node was open still after %v", offlineWait)
		} else {
			cl = fmt.Sprintf("its connection to the killed node closed after %v", d.Round(time.Millisecond))
		}
		t.Errorf("%s (%s): the killed node was offline after %v, want within %v; %s", v.Info().Name, how, took.Round(time.Millisecond), bound, cl)
	}
}

// connClosed watches viewer's connection to the peer id from since on and
// sends how long after since it had none, or -1 if it had one still after
// within (or when the test ended first).
func connClosed(t *testing.T, viewer *netmesh.Node, id string, since time.Time, within time.Duration) <-chan time.Duration {
	ch := make(chan time.Duration, 1)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for time.Since(since) < within && ctx.Err() == nil {
			if p, ok := viewer.Peer(id); !ok || p.Conn == netmesh.ConnNone {
				ch <- time.Since(since)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		ch <- -1
	}()
	return ch
}

// childSpec is what the killed node is started with.
type childSpec struct {
	Token     string
	DataDir   string
	Bootstrap []string
}

// runChildNode runs the node spec describes until stdin closes or the
// process is killed.
func runChildNode(t *testing.T, spec string) {
	var cs childSpec
	if err := json.Unmarshal([]byte(spec), &cs); err != nil {
		t.Fatal(err)
	}
	cfg := netmeshtest.Config(t, cs.Token, "child")
	cfg.DataDir, cfg.Bootstrap, cfg.HeartbeatInterval = cs.DataDir, cs.Bootstrap, offlineHB
	n, err := netmesh.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)
	upCtx, upCancel := context.WithTimeout(ctx, 30*time.Second)
	defer upCancel()
	if err := n.Up(upCtx); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("child node up\n")
	bufio.NewReader(os.Stdin).ReadString('\n')
	n.Close()
}

// A peer with two connections, one of which closes, stays online.
func TestPeerOnlineWhileAConnectionRemains(t *testing.T) {
	netmeshtest.CheckLeaks(t)
	nodes := netmeshtest.Cluster(t, 2, netmeshtest.WithHeartbeat(offlineHB))
	netmeshtest.WaitConverged(t, nodes, offlineWait)
	viewer, other := nodes[1], nodes[0].ID()
	events, stop := viewer.Subscribe()
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	closeAside, err := netmesh.DialAside(ctx, nodes[0], viewer.ID())
	if err != nil {
		t.Fatalf("a second connection: %v", err)
	}
	defer closeAside()
	netmeshtest.WaitFor(t, 10*time.Second, func() bool { return netmesh.Conns(viewer, other) >= 2 }, "no second connection")
	if err := netmesh.CloseOldestConn(viewer, other); err != nil {
		t.Fatal(err)
	}
	// Longer than a redial takes, and shorter than heartbeat expiry.
	for end := time.Now().Add(offlineBound); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if p, ok := viewer.Peer(other); !ok || !p.Online {
			t.Fatal("the peer went offline while a connection to it remained")
		}
	}
	for {
		select {
		case ev := <-events:
			if ev.Peer.PeerID == other && ev.Type == netmesh.PeerOffline {
				t.Fatal("an offline event while a connection remained")
			}
			continue
		default:
		}
		break
	}
}

// A connection to a live peer that closes (a NAT dropped it, say) is
// redialed, and the peer never shows offline on either side.
func TestDroppedConnectionToLivePeer(t *testing.T) {
	netmeshtest.CheckLeaks(t)
	nodes := netmeshtest.Cluster(t, 2, netmeshtest.WithHeartbeat(offlineHB))
	netmeshtest.WaitConverged(t, nodes, offlineWait)
	if err := netmesh.CloseOldestConn(nodes[0], nodes[1].ID()); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(offlineBound); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		for i, v := range nodes {
			if p, ok := v.Peer(nodes[1-i].ID()); !ok || !p.Online {
				t.Fatalf("%s showed its live peer offline", v.Info().Name)
			}
		}
	}
	if netmesh.Conns(nodes[0], nodes[1].ID()) == 0 {
		t.Error("no connection again")
	}
}

// A member that the others removed (they block it, as the application
// does with a signed removal) sees them offline within a second or two,
// and stays so; they list it offline at once.
func TestRemovedMemberSeesOthersOfflineAtOnce(t *testing.T) {
	netmeshtest.CheckLeaks(t)
	nodes := netmeshtest.Cluster(t, 3, netmeshtest.WithHeartbeat(offlineHB))
	netmeshtest.WaitConverged(t, nodes, offlineWait)
	removed := nodes[2]

	start := removeLast(t, nodes)
	for _, n := range nodes[:2] {
		took := onlineAfter(t, n, removed.ID(), false, start)
		t.Logf("%s: the removed member was offline after %v", n.Info().Name, took.Round(time.Millisecond))
		if took > offlineBound {
			t.Errorf("%s: the removed member was offline after %v, want within %v", n.Info().Name, took.Round(time.Millisecond), offlineBound)
		}
	}
	removedSeesOffline(t, nodes, start)
	// It still dials its bootstrap peer, which turns it away: that must
	// not bring the peer back.
	holdsOffline(t, removed, nodes[0].ID(), offlineHB)
}

// A removed member that heard one member only through another sees both
// offline once its last connection is gone, not once the heartbeats of
// the one it heard through others stop.
func TestRemovedMemberSeesOthersOfflineThroughOthers(t *testing.T) {
	netmeshtest.CheckLeaks(t)
	nodes := netmeshtest.Cluster(t, 3, netmeshtest.WithHeartbeat(offlineHB))
	removed := nodes[2]
	for _, pair := range [][2]int{{1, 2}, {2, 1}} {
		if err := netmesh.Unlink(nodes[pair[0]], nodes[pair[1]].ID()); err != nil {
			t.Fatal(err)
		}
	}
	netmeshtest.WaitConverged(t, nodes, offlineWait)
	if c := netmesh.Conns(removed, nodes[1].ID()); c != 0 {
		t.Fatalf("the removed member has %d connections to node1, want none", c)
	}

	start := removeLast(t, nodes)
	removedSeesOffline(t, nodes, start)
	holdsOffline(t, removed, nodes[1].ID(), offlineHB)
}

// removeLast has every node but the last remove it (block it, as the
// application does with a signed removal), and says when.
func removeLast(t *testing.T, nodes []*netmesh.Node) time.Time {
	t.Helper()
	start := time.Now()
	removed := nodes[len(nodes)-1]
	for _, n := range nodes[:len(nodes)-1] {
		if err := n.Block(removed.ID()); err != nil {
			t.Fatal(err)
		}
	}
	return start
}

// removedSeesOffline checks that the last node, removed at start, sees
// every other offline within offlineBound.
func removedSeesOffline(t *testing.T, nodes []*netmesh.Node, start time.Time) {
	t.Helper()
	removed := nodes[len(nodes)-1]
	for _, n := range nodes[:len(nodes)-1] {
		took := onlineAfter(t, removed, n.ID(), false, start)
		t.Logf("the removed member saw %s offline after %v (heartbeat %v)", n.Info().Name, took.Round(time.Millisecond), offlineHB)
		if took > offlineBound {
			t.Errorf("the removed member saw %s offline after %v, want within %v", n.Info().Name, took.Round(time.Millisecond), offlineBound)
		}
	}
}
