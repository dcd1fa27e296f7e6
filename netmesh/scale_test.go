package netmesh_test

import (
	"sync"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/netmesh/netmeshtest"
)

// Ten members heartbeat half as often as three: each announces the slower
// pace in its heartbeats, and no one goes offline while the pace changes.
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

	want := netmesh.PaceEvery(every, n-1)
	if want <= every {
		t.Fatalf("a mesh of %d heartbeats every %v: the test needs one that slows down", n, want)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		slow := 0
		for _, d := range paces {
			if d == want {
				slow++
			}
		}
		mu.Unlock()
		if slow == n-1 {
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("after 10 s, %d of %d members announce %v: %v", slow, n-1, want, paces)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Four of the slower beats: a member that did not say it slowed down
	// would have been judged on the faster one and gone offline.
	time.Sleep(4 * want)
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
