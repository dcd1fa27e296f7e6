package netmesh_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/netmesh/netmeshtest"
)

// Gossip streams that break while the connection stays (a stalled
// connection, writeback holding the process) are opened again, however
// often: the peers keep hearing each other's heartbeats. The gossip layer
// on its own gives up on a peer after its fourth broken stream in ten
// minutes and never writes to it again while the connection lasts: the
// peers then hear nothing of each other though both are alive and
// connected (pings keep them looking online). A break can also make one
// side forget that the other is in the room while both streams live.
func TestGossipStreamsBrokenAgainAndAgain(t *testing.T) {
	netmeshtest.CheckLeaks(t)
	const hb = 300 * time.Millisecond
	nodes := netmeshtest.Cluster(t, 2, netmeshtest.WithHeartbeat(hb))
	netmeshtest.WaitConverged(t, nodes, 15*time.Second)
	a, b := nodes[0], nodes[1]
	// flows says whether an info change of from reaches to.
	flows := func(from, to *netmesh.Node, mark string) func() bool {
		from.SetInfo(func(i *netmesh.NodeInfo) { i.Version = mark })
		return func() bool {
			p, ok := to.Peer(from.ID())
			return ok && p.Online && p.Version == mark
		}
	}
	for i := range 6 { // the fifth is one too many for the gossip layer
		netmeshtest.WaitFor(t, 20*time.Second, func() bool { return netmesh.ResetGossip(a, b.ID()) > 0 },
			fmt.Sprintf("no gossip stream to break, after %d breaks", i))
		for _, d := range [][2]*netmesh.Node{{a, b}, {b, a}} {
			netmeshtest.WaitFor(t, 20*time.Second, flows(d[0], d[1], fmt.Sprintf("break-%d", i+1)),
				fmt.Sprintf("%s's news did not reach %s after break %d", d[0].Info().Name, d[1].Info().Name, i+1))
		}
	}
}
