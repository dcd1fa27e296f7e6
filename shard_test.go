package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/netmesh"
)

type planDoc struct {
	Model  string      `json:"model"`
	Detail string      `json:"detail"`
	Plan   engine.Plan `json:"plan"`
	Error  string      `json:"error"`
}

func (p *proc) plan(t *testing.T) planDoc {
	t.Helper()
	var d planDoc
	if err := nodetest.GetJSON(p.API+"/api/plan", &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// waitPlan polls /api/plan until the model is ready under a plan ok accepts.
func (p *proc) waitPlan(t *testing.T, what string, within time.Duration, ok func(planDoc) bool) planDoc {
	t.Helper()
	deadline := time.Now().Add(within)
	var d planDoc
	for time.Now().Before(deadline) {
		d = planDoc{}
		var st map[string]any
		if nodetest.GetJSON(p.API+"/api/plan", &d) == nil && ok(d) && nodetest.GetJSON(p.API+"/api/status", &st) == nil && modelReady(st) {
			return d
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; plan: %+v\n%s", what, d, p.Logs.String())
	return d
}

func layersOf(d planDoc, id string) int {
	for _, n := range d.Plan.Nodes {
		if n.ID == id {
			return n.Layers
		}
	}
	return 0
}

// A head and two workers, three processes joined over the mesh, produce
// the same greedy tokens as one process; losing a worker re-plans, and a
// new worker is taken in.
func TestShardAcrossWorkers(t *testing.T) {
	m := enginetest.TestModel(t)
	rt := enginetest.Runtime(t)
	want := enginetest.Complete(t, enginetest.Server(t, rt, engine.ServerSpec{Model: m.Path}), 32)

	token := newToken(t)
	env := []string{"POTLUCK_P2P_HEARTBEAT=1s"}
	head := startPotluckEnv(t, env, meshArgs(token, "--name", "head", "--model", m.Path, "--split", "all")...)
	boot := head.meshStatus(t).P2PAddrs[0]
	w1 := startPotluckEnv(t, env, meshArgs(token, "--name", "w1", "--share", "worker", "--bootstrap", boot)...)
	w2 := startPotluckEnv(t, env, meshArgs(token, "--name", "w2", "--share", "worker", "--bootstrap", boot)...)
	id1, id2 := w1.meshStatus(t).PeerID, w2.meshStatus(t).PeerID

	d := head.waitPlan(t, "both workers in the plan", 30*time.Second, func(d planDoc) bool {
		return layersOf(d, id1) > 0 && layersOf(d, id2) > 0
	})
	t.Logf("plan:\n%s", d.Plan.String())
	if got := enginetest.Complete(t, head.API, 32); got != want {
		t.Fatalf("split over the mesh: %q\nsingle process:      %q", got, want)
	}
	assertLoopbackOnly(t)

	// Kill w1: the head re-plans without it and serves the same text again.
	killed := time.Now()
	w1.Cmd.Process.Signal(syscall.SIGKILL)
	recovered := false
	for time.Since(killed) < 15*time.Second {
		d := head.plan(t)
		if layersOf(d, id1) == 0 && layersOf(d, id2) > 0 && completes(head.API, 32) == want {
			recovered = true
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !recovered {
		t.Fatalf("no recovery within 15s of losing a worker; plan %+v\n%s", head.plan(t), head.Logs.String())
	}
	t.Logf("served again %s after a worker was killed", time.Since(killed).Round(time.Millisecond))

	// A new worker is included.
	w3 := startPotluckEnv(t, env, meshArgs(token, "--name", "w3", "--share", "worker", "--bootstrap", boot)...)
	id3 := w3.meshStatus(t).PeerID
	head.waitPlan(t, "the new worker in the plan", 30*time.Second, func(d planDoc) bool { return layersOf(d, id3) > 0 })
	if got := enginetest.Complete(t, head.API, 32); got != want {
		t.Errorf("after adding a worker: %q, want %q", got, want)
	}
}

// completes returns the greedy completion, or "" on any error.
func completes(api string, n int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := fmt.Sprintf(`{"prompt":"","max_tokens":%d,"temperature":0,"seed":1}`, n)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api+"/v1/completions", strings.NewReader(body))
	if err != nil {
		return ""
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var out struct {
		Choices []struct{ Text string } `json:"choices"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil || len(out.Choices) == 0 {
		return ""
	}
	return out.Choices[0].Text
}

// A worker that speaks another llama.cpp RPC protocol is left out, and
// /api/plan says why.
func TestShardExcludesProtocolMismatch(t *testing.T) {
	m := enginetest.TestModel(t)
	token := newToken(t)
	head := startPotluck(t, meshArgs(token, "--name", "head", "--model", m.Path, "--split", "all")...)
	boot := head.meshStatus(t).P2PAddrs[0]

	old := meshMember(t, token, boot, "old-worker")
	old.SetInfo(func(i *netmesh.NodeInfo) {
		i.Mode = "worker"
		i.MemoryOffered = 8 << 30
		i.Services = map[string]netmesh.ServiceInfo{"llama-rpc": {Version: "7.0.0"}}
	})
	d := head.waitPlan(t, "the old worker excluded", 30*time.Second, func(d planDoc) bool {
		return slices.ContainsFunc(d.Plan.Excluded, func(e engine.Exclusion) bool { return e.ID == old.ID() })
	})
	i := slices.IndexFunc(d.Plan.Excluded, func(e engine.Exclusion) bool { return e.ID == old.ID() })
	if r := d.Plan.Excluded[i].Reason; !strings.Contains(r, "7.0.0") {
		t.Errorf("exclusion reason %q does not name the protocol", r)
	}
	if layersOf(d, old.ID()) != 0 {
		t.Error("the mismatched worker holds layers")
	}
}
