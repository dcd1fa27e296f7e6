package lab_test

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/lab"
	"github.com/potluck-gpu/potluck/netmesh"
)

func TestMain(m *testing.M) {
	lab.RunHelper() // the forger's process runs here, and exits
	code := m.Run()
	nodetest.RemoveBinary()
	os.Exit(code)
}

// seesAll says whether n sees every id but its own online.
func seesAll(n *lab.Node, ids []string, self string) bool {
	on := n.OnlinePeers()
	for _, id := range ids {
		if id != self && !on[id] {
			return false
		}
	}
	return true
}

// Four machines on a LAN with no DHT and no bootstrap peer find each other
// by mDNS alone; a fourth that comes later is seen by all within seconds.
func TestLabMDNSLAN(t *testing.T) {
	nw := lab.New(t, 4, lab.Options{Hold: []int{3}})
	first := nw.Nodes[:3]
	var ids []string
	for _, n := range first {
		ids = append(ids, n.PeerID())
	}
	last := first[0].Started()
	for _, n := range first {
		if n.Started().After(last) {
			last = n.Started()
		}
	}
	nw.Wait("three nodes seeing each other", 30*time.Second, func() bool {
		for i, n := range first {
			if !seesAll(n, ids, ids[i]) {
				return false
			}
		}
		return true
	})
	converged := time.Since(last)

	late := nw.Nodes[3]
	late.Start()
	lateID := late.PeerID()
	all := append(slices.Clone(ids), lateID)
	nw.Wait("the late node and the others seeing each other", 30*time.Second, func() bool {
		if !seesAll(late, all, lateID) {
			return false
		}
		for _, n := range first {
			if !n.OnlinePeers()[lateID] {
				return false
			}
		}
		return true
	})
	joined := time.Since(late.Started())
	t.Logf("LAB mdns: nodes=4 first_three_converged=%s late_join_seen_by_all=%s",
		converged.Round(time.Millisecond), joined.Round(time.Millisecond))
	if joined > 5*time.Second {
		t.Errorf("a node joining the LAN took %s to be seen by all; want a few seconds at most", joined)
	}
}

// A machine on the same LAN with another network's token, dialing a member
// on purpose and answering mDNS, never shows up in any member's peers or
// plan, and sees nobody.
func TestLabForeignToken(t *testing.T) {
	enginetest.Runtime(t)
	m := enginetest.TestModel(t)
	const foreign = 3
	nw := lab.New(t, 4, lab.Options{
		Hold: []int{foreign},
		Args: func(i int) []string {
			switch i {
			case 0:
				return []string{"--name", "head", "--model", m.Path, "--split", "all"}
			case 1:
				return []string{"--name", "worker", "--share", "worker"}
			case 2:
				return []string{"--name", "member"}
			}
			return []string{"--name", "stranger", "--share", "worker"}
		},
	})
	var ids []string
	for _, n := range nw.Nodes[:3] {
		ids = append(ids, n.PeerID())
	}
	head := nw.Nodes[0]
	nw.Wait("the members seeing each other and the worker in the plan", 60*time.Second, func() bool {
		for i, n := range nw.Nodes[:3] {
			if !seesAll(n, ids, ids[i]) {
				return false
			}
		}
		d, err := head.Plan()
		return err == nil && d.Layers(ids[1]) > 0
	})
	other, err := netmesh.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	stranger := nw.Nodes[foreign]
	stranger.Start("--token", other, "--bootstrap", head.P2PAddr())
	strangerID := stranger.PeerID()

	const watch = 10 * time.Second
	polls := 0
	for end := time.Now().Add(watch); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		polls++
		for _, n := range nw.Nodes[:3] {
			ps, err := n.Peers()
			if err != nil {
				t.Fatalf("%s: %v", n.Name, err)
			}
			if slices.ContainsFunc(ps, func(p lab.Peer) bool { return p.ID == strangerID }) {
				t.Fatalf("%s lists the node with another token: %+v", n.Name, ps)
			}
		}
		if d, err := head.Plan(); err == nil && (d.Layers(strangerID) > 0 ||
			slices.ContainsFunc(d.Plan.Excluded, func(e engine.Exclusion) bool { return e.ID == strangerID })) {
			t.Fatalf("the head's plan names the foreign worker: %+v", d.Plan)
		}
		if ps, err := stranger.Peers(); err == nil && len(ps) > 0 {
			t.Fatalf("the foreign node sees peers of another network: %+v", ps)
		}
	}
	attempts := strings.Count(stranger.Logs(2000), "bootstrap peer unreachable")
	t.Logf("LAB foreign: watched=%s polls=%d member_peers_listing_it=0 its_peers=0 refused_dials=%d", watch, polls, attempts)
	if attempts == 0 {
		t.Errorf("the foreign node never tried to dial the head; the test proves nothing\n%s", stranger.Logs(40))
	}
}
