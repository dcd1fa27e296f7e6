package netmesh_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/netmesh/netmeshtest"
)

// A node counts what its streams carry, by protocol: two nodes that met
// have exchanged gossip both ways, and the totals hold every protocol.
func TestTrafficCountsByProtocol(t *testing.T) {
	netmeshtest.CheckLeaks(t)
	nodes := netmeshtest.Cluster(t, 2)
	netmeshtest.WaitConverged(t, nodes, 10*time.Second)
	// The counts are brought up to date once a second.
	var tr netmesh.Traffic
	var in, out int64
	netmeshtest.WaitFor(t, 5*time.Second, func() bool {
		tr, in, out = nodes[0].Traffic(), 0, 0
		gossip := false
		for p, c := range tr.ByProtocol {
			in, out = in+c.In, out+c.Out
			if strings.HasPrefix(p, "/meshsub/") && c.In > 0 && c.Out > 0 {
				gossip = true
			}
		}
		return gossip
	}, "gossip counted both ways", func() string { return fmt.Sprint(tr.ByProtocol) })
	t.Logf("in %d B, out %d B: %v", tr.In, tr.Out, tr.ByProtocol)
	if tr.In < in || tr.Out < out || tr.In == 0 {
		t.Errorf("totals in %d, out %d; the protocols add up to in %d, out %d", tr.In, tr.Out, in, out)
	}
}
