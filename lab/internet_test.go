package lab_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/bench/fig"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
	"github.com/potluck-gpu/potluck/lab"
	"github.com/potluck-gpu/potluck/netmesh"
)

// Friends across the internet. A member with a public address (pub), and
// three homes, each behind its own NAT: two endpoint-independent (alice,
// carol) and one symmetric (bob). Bob's network, joined with his invite
// alone; alice and carol meet by hole punching, bob only through pub's
// relay; a request from alice is served by bob; with pub gone the
// hole-punched pair stays and the relayed one says it lost its relay; and
// after a restart of all, without bob, the rest find each other again.
// Each home's uplink adds WANDelay.
func TestLabInternet(t *testing.T) {
	enginetest.Runtime(t)
	m := enginetest.TestModel(t)
	// A model file only bob holds and one only carol holds: copying each
	// to alice measures a relayed and a hole-punched connection.
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	files := map[string]string{}
	for i, who := range []string{"bob", "carol"} {
		p := filepath.Join(dir, who, "owner", who, who+"-F32.gguf")
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := ggufgen.WriteFile(p, ggufgen.TinyLlama{Vocab: 2048, Embd: 1024, Layers: 2, Heads: 8, KVHeads: 8, FF: 2048, Context: 512, Seed: int64(20 + i)}); err != nil {
			t.Fatal(err)
		}
		files[who] = p
	}
	nw := lab.NewInternet(t, []lab.Site{
		{Name: "pub"},
		{Name: "alice", NAT: lab.NATEndpointIndependent},
		{Name: "bob", NAT: lab.NATSymmetric},
		{Name: "carol", NAT: lab.NATEndpointIndependent},
	}, lab.Options{Env: []string{"HF_ENDPOINT=http://127.0.0.1:9"}}) // no hub: only peers have the files
	pub, alice, bob, carol := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2], nw.Nodes[3]

	// pub runs first; bob (whose network it is) learns pub's address from
	// pub's invite, as from a friend's message.
	pub.Start()
	pub.PeerID() // in the mesh
	pubInvite, err := pub.InviteToken()
	if err != nil {
		t.Fatal(err)
	}
	bob.Start("--token", pubInvite, "--model", m.Path, "--share", "server", "--models-dir", filepath.Join(dir, "bob"))
	nw.Wait("bob and pub to meet", 60*time.Second, func() bool {
		p, ok := bob.PeerByName("pub")
		return ok && p.Online
	})

	// Bob's invite carries pub's public address: alice needs nothing else.
	var invite string
	nw.Wait("bob's invite to carry pub's address", 30*time.Second, func() bool {
		invite, err = bob.InviteToken()
		return err == nil && strings.Contains(inviteAddrs(t, invite), "/ip4/"+pub.IP+"/")
	})
	t.Logf("bob's invite carries: %s", inviteAddrs(t, invite))
	joinStart := time.Now()
	alice.Start("--token", invite)
	carol.Start("--token", invite, "--share", "worker", "--models-dir", filepath.Join(dir, "carol")) // a worker offers its files
	sees := func(n *lab.Node, names ...string) func() bool {
		return func() bool {
			for _, name := range names {
				if p, ok := n.PeerByName(name); !ok || !p.Online {
					return false
				}
			}
			return true
		}
	}
	nw.Wait("alice to see bob, carol and pub", 90*time.Second, sees(alice, "bob", "carol", "pub"))
	joined := time.Since(joinStart)

	// Hole punching between the endpoint-independent NATs; a relay for
	// the symmetric one.
	conn := func(n *lab.Node, name string) string {
		p, _ := n.PeerByName(name)
		return p.Conn
	}
	took := nw.Wait("alice and carol hole-punched", 3*time.Minute, func() bool {
		return conn(alice, "carol") == netmesh.ConnHolePunched || conn(carol, "alice") == netmesh.ConnHolePunched
	})
	t.Logf("hole punched %s after both joined", took)
	nw.Wait("alice to reach bob through pub's relay", 2*time.Minute, func() bool {
		return conn(alice, "bob") == netmesh.ConnRelayed
	})
	for _, n := range []*lab.Node{alice, carol} {
		if c := conn(n, "pub"); c != netmesh.ConnDirect {
			t.Errorf("%s reaches pub %q; want direct", n.Name, c)
		}
	}
	nw.Wait("reachability known", time.Minute, func() bool {
		sp, _ := pub.Status()
		sa, _ := alice.Status()
		return sp.Reachability == netmesh.ReachabilityPublic && sa.Reachability == netmesh.ReachabilityPrivate
	})

	// A request from alice is served by bob, over the relay.
	nw.Wait("alice to route to bob's model", time.Minute, func() bool {
		nodes, err := alice.ModelNodes()
		return err == nil && len(nodes[m.Alias]) > 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	c, err := alice.Complete(ctx, 8)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Node, "bob") {
		t.Errorf("X-Potluck-Node %q; want bob", c.Node)
	}
	var ab, ac lab.Peer
	nw.Wait("round trips measured to bob and carol", 30*time.Second, func() bool {
		ab, _ = alice.PeerByName("bob")
		ac, _ = alice.PeerByName("carol")
		return ab.RTTMS > 0 && ac.RTTMS > 0
	})
	report(t, fig.Figure{Section: "internet", Name: "join across two NATs with the token alone", Unit: "s",
		Value: joined.Seconds(), Note: "from starting alice until she sees bob, carol and pub online"})
	report(t, fig.Figure{Section: "internet", Name: "hole punching between two endpoint-independent NATs", Unit: "s",
		Value: took.Seconds(), Note: "after both joined, until the direct connection replaced the relayed one"})
	report(t, fig.Figure{Section: "internet", Name: "round trip relayed (symmetric NAT)", Unit: "ms", Value: ab.RTTMS,
		Anchor: "round trip hole-punched", AnchorValue: ac.RTTMS, Relation: fmt.Sprintf("%+.2f ms", ab.RTTMS-ac.RTTMS),
		Note: "namespaces on one machine: no link delay"})

	// Throughput: alice copies bob's file (relayed) and carol's
	// (hole-punched).
	mbps := map[string]float64{}
	for _, who := range []string{"bob", "carol"} {
		fi, _ := os.Stat(files[who])
		sum := fileSHA(t, files[who])
		nw.Wait("alice to see "+who+"'s file offered", time.Minute, func() bool { return slices.Contains(holders(alice, sum), who) })
		start := time.Now()
		if _, err := adminPost(alice, "/api/pull", map[string]any{"model": "owner/" + who + "/" + who + "-F32.gguf", "stream": false}, 5*time.Minute); err != nil {
			t.Fatalf("copy %s's file: %v", who, err)
		}
		mbps[who] = float64(fi.Size()) * 8 / 1e6 / time.Since(start).Seconds()
		t.Logf("copied %d MB from %s in %s: %.0f Mbit/s", fi.Size()>>20, who, time.Since(start).Round(time.Millisecond), mbps[who])
	}
	report(t, fig.Figure{Section: "internet", Name: "model copy relayed (symmetric NAT)", Unit: "Mbit/s", Value: mbps["bob"],
		Anchor: "model copy hole-punched", AnchorValue: mbps["carol"], Relation: fmt.Sprintf("%.2fx", mbps["bob"]/mbps["carol"]),
		Note: "about 100 MB each, no link caps: what the relaying member's CPU and the tunnel allow"})

	// pub goes away: the hole-punched pair stays, the relayed one says
	// what it lost.
	pub.Kill()
	nw.Wait("alice to say it lost its relay to bob", time.Minute, func() bool {
		return conn(alice, "bob") == netmesh.ConnRelayLost
	})
	if c := conn(alice, "carol"); c != netmesh.ConnHolePunched && c != netmesh.ConnDirect {
		t.Errorf("without pub, alice reaches carol %q; want the direct connection kept", c)
	}
	time.Sleep(5 * time.Second) // several heartbeats
	if p, _ := alice.PeerByName("carol"); !p.Online {
		t.Error("without pub, alice lost carol")
	}

	// Everyone stops; all but bob (the inviter) come back, from what they
	// remember, and find each other again.
	for _, n := range []*lab.Node{alice, carol, bob} {
		n.Stop()
	}
	pub.Restart()
	alice.Restart()
	carol.Restart()
	reform := nw.Wait("the network to re-form without bob", 2*time.Minute, func() bool {
		return sees(alice, "carol", "pub")() && sees(carol, "alice", "pub")()
	})
	report(t, fig.Figure{Section: "internet", Name: "network re-formed after a restart, without the inviter", Unit: "s",
		Value: reform.Seconds(), Note: "from the last restart until alice and carol see each other and pub"})
}

// inviteAddrs lists the addresses an invite carries.
func inviteAddrs(t *testing.T, invite string) string {
	t.Helper()
	tok, err := netmesh.ParseToken(invite)
	if err != nil {
		t.Fatalf("invite: %v", err)
	}
	return strings.Join(slices.Clone(tok.Addrs()), " ")
}
