package lab_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/lab"
	"github.com/potluck-gpu/potluck/netmesh"
)

// status reads a node's status or fails the test.
func status(t *testing.T, n *lab.Node) lab.Status {
	t.Helper()
	s, err := n.Status()
	if err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	return s
}

func memberStatus(t *testing.T, n *lab.Node) map[string]string {
	t.Helper()
	ms, err := n.Members()
	if err != nil {
		t.Fatalf("%s members: %v", n.Name, err)
	}
	out := map[string]string{}
	for _, m := range ms {
		out[m.Name] = m.Status
	}
	return out
}

// Members of one network: a holder of the token forges heartbeats under
// B's peer id and changes nothing; the owner A removes C, and within 10 s C
// is cut off and A and B talk on a new token; C restarted with its saved
// settings sees nobody; D, offline during the removal, moves to the new
// token when it comes back; A restarted with the old token on its command
// line finds the network on the new one.
func TestLabMembers(t *testing.T) {
	keyDir := t.TempDir()
	owner, err := netmesh.OwnerKey(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	token, err := netmesh.NewOwnedToken(owner.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	nw := lab.New(t, 5, lab.Options{Token: token, Hold: []int{0, 1, 2, 3, 4}})
	a, b, c, d, forger := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2], nw.Nodes[3], nw.Nodes[4]
	key, err := os.ReadFile(filepath.Join(keyDir, netmesh.OwnerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.DataDir, netmesh.OwnerKeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	members := []*lab.Node{a, b, c, d}
	for _, n := range members {
		n.Start()
	}
	ids := map[*lab.Node]string{}
	for _, n := range members {
		ids[n] = n.PeerID()
	}
	nw.Wait("four members seeing each other", 30*time.Second, func() bool {
		for _, n := range members {
			on := n.OnlinePeers()
			for _, m := range members {
				if m != n && !on[ids[m]] {
					return false
				}
			}
		}
		return true
	})
	firstNet := status(t, a).Network

	// 1. A forger holding the token speaks as B.
	fg := forger.StartForger(ids[b], a.P2PAddr(), 6*time.Second)
	var seen, changed int
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); {
		ps, err := a.Peers()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			seen++
			if p.ID == ids[b] && (p.Name != b.Name || len(p.Models) > 0 || p.Mode != "off") {
				changed++
				t.Errorf("A's entry for B changed: %+v", p)
			}
			if p.Name == "forged" || (p.ID != ids[b] && p.ID != ids[c] && p.ID != ids[d] && p.Name != "forger") {
				t.Errorf("A lists a forged member: %+v", p)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	rep, err := fg.Wait(40 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"unsigned", "signed by another key", "tampered", "replay", "unknown id"} {
		if rep.Sent[kind] == 0 {
			t.Errorf("the forger sent no %q messages: %+v", kind, rep)
		}
	}
	rejected := 0.0
	for _, n := range []*lab.Node{a, b, c} {
		m, err := n.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		r := lab.SumMetric(m, "potluck_mesh_messages_rejected_total")
		if r < float64(rep.Rounds) {
			t.Errorf("%s counted %v rejected messages for %d rounds of forgery", n.Name, r, rep.Rounds)
		}
		if n == a {
			rejected = r
		}
	}
	t.Logf("LAB members forged: rounds=%d sent=%v captured=%d A_rejected=%v A_views_of_B=%d changed=%d",
		rep.Rounds, rep.Sent, rep.Captured, rejected, seen, changed)

	// 2. D is offline; the owner removes C.
	d.Kill()
	start := time.Now()
	var res struct {
		Removed struct{ Name string } `json:"removed"`
		Moving  []struct{ Name string }
		Token   string
	}
	if err := a.Admin("/api/members/remove", map[string]string{"peer": c.Name}, &res); err != nil {
		t.Fatal(err)
	}
	removedIn := time.Since(start)
	moving := map[string]bool{}
	for _, m := range res.Moving {
		moving[m.Name] = true
	}
	// The forger held the token too, so it is a member that moves.
	if res.Removed.Name != c.Name || !moving[b.Name] || !moving[d.Name] || moving[c.Name] || moving[a.Name] {
		t.Errorf("removal answer %+v; want C removed and B and D moving", res)
	}
	moved := nw.Wait("A and B on a new token, C cut off", 10*time.Second, func() bool {
		sa, sb := status(t, a), status(t, b)
		if sa.Network == firstNet || sa.Network != sb.Network || sa.Network != res.Token {
			return false
		}
		onA, onB, onC := a.OnlinePeers(), b.OnlinePeers(), c.OnlinePeers()
		return onA[ids[b]] && onB[ids[a]] && !onA[ids[c]] && !onB[ids[c]] && onC != nil && len(onC) == 0
	})
	sc := status(t, c)
	removedWarning := false
	for _, w := range sc.Warnings {
		removedWarning = removedWarning || w.Code == "removed"
	}
	if !removedWarning {
		t.Errorf("C was not told it was removed: %+v", sc.Warnings)
	}
	if ms := memberStatus(t, a); ms[c.Name] != "removed" || ms[d.Name] != "not yet rotated" || ms[b.Name] != "member" {
		t.Errorf("A's members: %v", ms)
	}

	// 3. C restarts with its saved settings: it sees nobody.
	c.Kill()
	c.Restart()
	restarted := time.Now()
	for time.Since(restarted) < 10*time.Second {
		if on := c.OnlinePeers(); len(on) > 0 {
			t.Fatalf("the removed C sees %v after its restart", on)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if on := a.OnlinePeers(); on[ids[c]] {
		t.Errorf("A sees the removed C")
	}

	// 4. D comes back on the old token and moves to the new one.
	d.Restart()
	dMoved := nw.Wait("D on the new token", 40*time.Second, func() bool {
		sd := status(t, d)
		on := d.OnlinePeers()
		return sd.Network == res.Token && on[ids[a]] && on[ids[b]] && !on[ids[c]]
	})
	nw.Wait("A listing D as a member", 10*time.Second, func() bool { return memberStatus(t, a)[d.Name] == "member" })

	// 5. A restarts with the old token still on its command line.
	a.Kill()
	a.Restart()
	aBack := nw.Wait("A back on the new token", 30*time.Second, func() bool {
		sa := status(t, a)
		on := a.OnlinePeers()
		return sa.Network == res.Token && on[ids[b]] && on[ids[d]]
	})
	if logs := a.Logs(400); !strings.Contains(logs, "moved it to a new token") {
		t.Errorf("A did not say it used the new token instead of --token")
	}
	t.Logf("LAB members removal: moved_in=%s c_seen_by_nobody_for=10s d_moved_after_restart=%s a_back=%s",
		moved.Round(time.Millisecond), dMoved.Round(time.Millisecond), aBack.Round(time.Millisecond))
	t.Logf("LAB members: removal answered in %s", removedIn.Round(time.Millisecond))
}
