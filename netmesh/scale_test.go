package netmesh_test

import (
	"sync"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/netmesh/netmeshtest"
)

// Ten members heartbeat half as often as three, and, idle and all directly
// connected, IdleStretch times slower again: each announces the slower
// pace in its heartbeats, and no one goes offline while the pace changes.
// A member with something new says it at once, at the mesh's pace.
func TestHeartbeatSlowsAsTheMeshGrows(t *testing.T) {
	netmeshtest.CheckLeaks(t)
	const (
		n     = 10
		every = 200 * time.Millisecond
	)
	var (
		mu    sync.Mutex
		paces = map[string]time.Duration{} // the last pace each member announced
	)
	tap := func(msg string) {
		if from, d, ok := netmesh.HeartbeatPace(msg); ok {
			mu.Lock()
			paces[from] = d
			mu.Unlock()
		}
	}
	nodes := netmeshtest.Cluster(t, n, netmeshtest.WithHeartbeat(every), netmeshtest.WithConfig(func(i int, c *netmesh.Config) {
		if i == 0 {
			c.Tap = tap
		}
	}))
	netmeshtest.WaitConverged(t, nodes, 30*time.Second)

	pace := netmesh.PaceEvery(every, n-1)
	if pace <= every {
		t.Fatalf("a mesh of %d heartbeats every %v: the test needs one that slows down", n, pace)
	}
	idle := pace * netmesh.IdleStretch
	waitPaces := func(within time.Duration, ok func(from string, d time.Duration) bool, what string) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			mu.Lock()
			k := 0
			for from, d := range paces {
				if ok(from, d) {
					k++
				}
			}
			mu.Unlock()
			if k == n-1 {
				return
			}
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("after %v, %d of %d members announce %s: %v", within, k, n-1, what, paces)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitPaces(10*time.Second, func(_ string, d time.Duration) bool { return d == idle }, idle.String())

	// Something new from one member goes out at once, at the mesh's pace;
	// the others stay idle.
	changed := nodes[1].Info().PeerID
	nodes[1].SetInfo(func(i *netmesh.NodeInfo) { i.Name = "renamed" })
	waitPaces(2*time.Second, func(from string, d time.Duration) bool {
		if from == changed {
			return d == pace
		}
		return d == idle
	}, "the idle pace but the renamed one "+pace.String())

	// Four of the slowest beats: a member that did not say it slowed down
	// would have been judged on a faster one and gone offline.
	time.Sleep(4 * idle)
	for _, nd := range nodes {
		for _, p := range nd.Peers() {
			if !p.Online {
				t.Errorf("%s sees %s offline", nd.Info().Name, p.Name)
			}
		}
		if k := len(nd.Peers()); k != n-1 {
			t.Errorf("%s lists %d peers, want %d", nd.Info().Name, k, n-1)
		}
	}
}
