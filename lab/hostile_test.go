package lab_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/lab"
	"github.com/potluck-gpu/potluck/rpcgate/rpcgatetest"
)

// A machine of the LAN holds the token and sends a sharing worker's RPC
// service, a stream each, what no inference sends: a custom operation
// whose function pointer it chose, GET_ROWS with mismatched shapes, a 1 TB
// buffer, a command a head never sends, a second HELLO, a node of id 0.
// The worker's gate closes each stream, counts each reason, names the
// member as misbehaving and puts it on its member list (whether or not its
// announcement arrived before its attacks); then a real head splits over
// the same worker and answers with one process's text.
func TestLabHostileMember(t *testing.T) {
	m := enginetest.TestModel(t)
	want := reference(t, m, 32)
	nw := lab.New(t, 3, lab.Options{
		Hold: []int{0, 2},
		Args: func(i int) []string {
			switch i {
			case 0:
				return []string{"--name", "head", "--model", m.Path, "--split", "all"}
			case 1:
				return []string{"--name", "w1", "--share", "worker"}
			}
			return nil
		},
	})
	head, w, evil := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	wid := w.PeerID()

	h := evil.StartHostile(wid, w.P2PAddr())
	rep, err := h.Wait(3 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	attacks := rpcgatetest.Attacks()
	for _, a := range attacks {
		if got := rep.Outcomes[a.Name]; got != "closed" {
			t.Errorf("%s: %s", a.Name, got)
		}
	}

	// The worker counted each, and names the member.
	metrics, err := w.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range attacks {
		if n := lab.SumMetric(metrics, "potluck_rpc_refused_total", `reason="`+a.Reason+`"`); n < 1 {
			t.Errorf("potluck_rpc_refused_total{reason=%q} = %v after %s", a.Reason, n, a.Name)
		}
	}
	nw.Wait("the worker naming the member", 20*time.Second, func() bool {
		ps, err := w.Peers()
		if err != nil {
			return false
		}
		for _, p := range ps {
			if p.ID == rep.PeerID && p.RPCRefused != nil && p.RPCRefused.Count == len(attacks) {
				return true
			}
		}
		return false
	})

	// It is on the worker's member list too, even when it never announced
	// itself, so that the owner can remove it.
	ms, err := w.Members()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(ms, func(m lab.Member) bool { return m.PeerID == rep.PeerID }) {
		t.Errorf("the worker's members %+v lack the hostile member %s", ms, rep.PeerID)
	}

	// The worker still lends to a real head.
	head.Start()
	nw.Wait("the worker in the head's plan", 90*time.Second, func() bool { return planUses(head, []string{wid}, nil) })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := head.Complete(ctx, 32)
	if err != nil || c.Text != want {
		t.Errorf("the head over the worker after the attacks: %q, %v; want %q", c.Text, err, want)
	}
	t.Logf("LAB hostile member: %d attacks, each stream closed; the head then split over the worker with one process's text", len(attacks))
}
