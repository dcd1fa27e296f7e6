package netmesh_test

import (
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/netmesh/netmeshtest"
)

// A holder of the token tries to speak for member B: unsigned heartbeats,
// heartbeats signed by its own key, tampered and replayed ones, and
// heartbeats for members that do not exist. A's view of B stays what B
// itself announced, A's roster never grows, every bad message is counted,
// and once B stops, replaying what B sent does not keep it alive.
func TestForgedHeartbeatsChangeNothing(t *testing.T) {
	netmeshtest.CheckLeaks(t)
	var forger *netmeshtest.Forger
	nodes := netmeshtest.Cluster(t, 3, netmeshtest.WithConfig(func(i int, c *netmesh.Config) {
		if i == 2 {
			f, err := netmeshtest.NewForger(c)
			if err != nil {
				t.Fatal(err)
			}
			forger = f
		}
	}))
	a, b, f := nodes[0], nodes[1], nodes[2]
	forger.Attach(f)
	netmeshtest.WaitConverged(t, nodes, 10*time.Second)
	b.SetInfo(func(i *netmesh.NodeInfo) { i.Mode = "worker"; i.MemoryOffered = 1 << 30 })
	netmeshtest.WaitFor(t, 5*time.Second, func() bool {
		p, _ := a.Peer(b.ID())
		return p.Mode == "worker" && forger.Captured(b.ID()) >= 3
	}, "B's info did not reach A, or the forger heard nothing of B")

	before := a.Rejected()
	const rounds = 6
	kinds := map[string]int{}
	for r := range uint64(rounds) {
		for _, at := range forger.ForgeAs(b.ID(), "forged", r) {
			if !at.Sent {
				t.Fatalf("the forger could not publish %s", at.Kind)
			}
			kinds[at.Kind]++
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("forged: %v", kinds)
	for _, k := range []string{"unsigned", "signed by another key", "tampered", "replay", "unknown id"} {
		if kinds[k] == 0 {
			t.Errorf("the forger sent no %q message", k)
		}
	}
	// Each round has 5 messages that fail the checks (replays pass them
	// and are dropped as old news); gossip may lose a few.
	netmeshtest.WaitFor(t, 5*time.Second, func() bool { return a.Rejected()-before >= rounds*3 },
		"A did not count the forged messages")
	t.Logf("A rejected %d messages", a.Rejected()-before)

	p, ok := a.Peer(b.ID())
	if !ok || p.Name != "node1" || p.Mode != "worker" || p.MemoryOffered != 1<<30 || len(p.Models) != 0 || !p.Online {
		t.Errorf("A's entry for B was changed by the forger: %+v", p)
	}
	if peers := a.Peers(); len(peers) != 2 {
		t.Errorf("A's roster grew from forged ids: %s", netmeshtest.Views(nodes[:1]))
	}

	// B stops; the forger replays everything B ever sent, over and over.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	offline := false
	for time.Since(stopped) < 3*time.Second {
		forger.ForgeAs(b.ID(), "forged", 100)
		if p, _ := a.Peer(b.ID()); !p.Online {
			offline = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	p, _ = a.Peer(b.ID())
	if !offline || p.Online {
		t.Errorf("replays kept the stopped B online at A: %+v", p)
	}
	if p.Name != "node1" || len(p.Models) != 0 {
		t.Errorf("A's entry for the stopped B was changed: %+v", p)
	}
}
