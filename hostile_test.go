package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/rpcgate/rpcgatetest"
	"github.com/potluck-gpu/potluck/sandbox/sandboxtest"
)

// A member holding the token dials a sharing worker's RPC service and
// sends a graph with a custom operation whose function pointer it chose.
// The gate closes the stream, counts it, and names the member in the
// worker's /api/peers; the worker still lends to a real head, which splits
// with one process's text. The worker's llama.cpp runs in the sandbox.
func TestHostileMemberIsRefused(t *testing.T) {
	p := newWorkerPool(t)
	m, want, token, env, w, boot, wid := p.model, p.want, p.token, p.env, p.worker, p.boot, p.wid

	evil := meshMember(t, token, boot, "mallory")
	// The worker's llama.cpp may still be starting: a stream then ends
	// at once, and the member dials again, as a head would.
	var c net.Conn
	var major byte
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		c = dialRPC(t, evil, wid)
		var err error
		if major, err = rpcgatetest.Hello(c, 30*time.Second); err == nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("through the gate: %v", err)
		}
	}
	defer c.Close()
	custom := rpcgatetest.Attacks()[0] // a custom operation with a chosen function pointer
	c.Write(custom.Frame(major))
	if !rpcgatetest.Closed(c, 30*time.Second) {
		t.Fatalf("the stream stayed open after %s", custom.Name)
	}

	// The worker names the member, and counts the refusal.
	var seen bool
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end) && !seen; time.Sleep(200 * time.Millisecond) {
		var peers []struct {
			PeerID  string `json:"peer_id"`
			Refused *struct {
				Count  int    `json:"count"`
				Reason string `json:"reason"`
			} `json:"rpc_refused"`
		}
		if nodetest.GetJSON(w.API+"/api/peers", &peers) != nil {
			continue
		}
		for _, p := range peers {
			seen = seen || (p.PeerID == evil.ID() && p.Refused != nil && p.Refused.Reason == "custom-op" && p.Refused.Count == 1)
		}
	}
	if !seen {
		t.Errorf("/api/peers of the worker does not name the member refused")
	}
	if metrics := getText(t, w.API+"/metrics"); !strings.Contains(metrics, `potluck_rpc_refused_total{reason="custom-op"} 1`) {
		t.Errorf("/metrics lacks the refusal")
	}

	// The worker still lends: a real head splits over it.
	head := startPotluckEnv(t, env, meshArgs(token, "--name", "head", "--model", m.Path, "--split", "all", "--bootstrap", boot)...)
	head.waitPlan(t, "the worker in the plan", 60*time.Second, func(d planDoc) bool { return layersOf(d, wid) > 0 })
	if got := enginetest.Complete(t, head.API, 32); got != want {
		t.Errorf("split over the worker after the refusal: %q, want %q", got, want)
	}

	// Its llama.cpp runs confined.
	sandboxtest.RequireConfined(t, sandboxtest.Process(t, w.Cmd.Process.Pid, "rpc-server"), "the worker's rpc-server")
}

// dialRPC opens a stream from member to the RPC service of the worker wid,
// as a head would.
func dialRPC(t *testing.T, member *netmesh.Node, wid string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var tun *netmesh.Tunnel
	var err error
	for tun == nil {
		if tun, err = member.Dial(ctx, wid, "llama-rpc"); err != nil {
			if ctx.Err() != nil {
				t.Fatalf("dial the worker's RPC service: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Cleanup(func() { tun.Close() })
	c, err := net.Dial("tcp", tun.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// workerPool is a network of one sharing worker, and what a test of its
// lending needs: the test model and one process's greedy text of it.
type workerPool struct {
	model     enginetest.Model
	want      string // 32 greedy tokens of model in one process
	token     string
	env       []string
	worker    *proc
	boot, wid string // the worker's p2p address and peer id
}

func newWorkerPool(t *testing.T) workerPool {
	t.Helper()
	p := workerPool{model: enginetest.TestModel(t), token: newToken(t), env: []string{"POTLUCK_P2P_HEARTBEAT=1s"}}
	p.want = enginetest.Complete(t, enginetest.Server(t, enginetest.Runtime(t), engine.ServerSpec{Model: p.model.Path}), 32)
	p.worker = startPotluckEnv(t, p.env, meshArgs(p.token, "--name", "w", "--share", "worker")...)
	st := p.worker.meshStatus(t)
	p.boot, p.wid = st.P2PAddrs[0], st.PeerID
	return p
}

func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
