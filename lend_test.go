package main

import (
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/rpcgate/rpcgatetest"
)

// A worker lends to the members its owner names, and to every member
// again when told so. A head it does not lend to leaves it out of its plan
// and says why; once named, that head splits over it with one process's
// text. A member it does not lend to that dials its RPC service anyway is
// held at once, without being taken for a misbehaving one.
func TestLendToNamedMembers(t *testing.T) {
	p := newWorkerPool(t)
	m, want, token, env, w, boot, wid := p.model, p.want, p.token, p.env, p.worker, p.boot, p.wid
	lend := func(who ...string) {
		t.Helper()
		body := `{"lend_to":["` + strings.Join(who, `","`) + `"]}`
		if len(who) == 0 {
			body = `{"lend_to":[]}`
		}
		var res map[string]any
		if status, err := httpPostJSON(w.API+"/api/lend", body, &res); err != nil || status != 200 {
			t.Fatalf("lend to %q: %d %v %v", who, status, err, res)
		}
		var st struct {
			LendTo []string `json:"lend_to"`
		}
		if err := nodetest.GetJSON(w.API+"/api/status", &st); err != nil || !slices.Equal(st.LendTo, who) {
			t.Fatalf("status after lending to %q: lend_to %q, %v", who, st.LendTo, err)
		}
	}
	lend("a-friend-not-here-yet")

	head := startPotluckEnv(t, env, meshArgs(token, "--name", "head", "--model", m.Path, "--split", "all", "--bootstrap", boot)...)
	head.waitPlan(t, "the worker left out, and why", 60*time.Second, func(d planDoc) bool {
		return slices.ContainsFunc(d.Plan.Excluded, func(e engine.Exclusion) bool {
			return e.ID == wid && strings.Contains(e.Reason, "lends its devices to some members only")
		})
	})
	lend("a-friend-not-here-yet", "head")
	head.waitPlan(t, "the worker in the plan", 60*time.Second, func(d planDoc) bool { return layersOf(d, wid) > 0 })
	if got := enginetest.Complete(t, head.API, 32); got != want {
		t.Errorf("split over the worker: %q, want %q", got, want)
	}

	// A member the worker does not lend to, dialling its RPC service.
	stranger := meshMember(t, token, boot, "stranger")
	hello := func() error {
		c := dialRPC(t, stranger, wid)
		defer c.Close()
		_, err := rpcgatetest.Hello(c, 20*time.Second)
		return err
	}
	if err := hello(); !errors.Is(err, io.EOF) {
		t.Errorf("a member the worker does not lend to: the stream was not closed at once (%v)", err)
	}
	var peers []struct {
		PeerID  string          `json:"peer_id"`
		LendTo  []string        `json:"lend_to"`
		Refused json.RawMessage `json:"rpc_refused"`
	}
	if err := nodetest.GetJSON(head.API+"/api/peers", &peers); err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if p.PeerID == wid && (slices.Contains(p.LendTo, stranger.ID()) || !slices.Contains(p.LendTo, head.meshStatus(t).PeerID)) {
			t.Errorf("the worker announces it lends to %q", p.LendTo)
		}
	}
	if err := nodetest.GetJSON(w.API+"/api/peers", &peers); err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if p.PeerID == stranger.ID() && len(p.Refused) > 0 {
			t.Errorf("a member not lent to is taken for a misbehaving one: %s", p.Refused)
		}
	}

	// Every member again: the stranger's HELLO is answered, once the
	// head has let the worker go (it serves one head at a time).
	lend()
	head.stop(t)
	if err := hello(); err != nil {
		t.Errorf("HELLO once the worker lends to every member: %v", err)
	}
}
