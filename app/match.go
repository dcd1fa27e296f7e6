package app

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/worker"
)

func (n *Node) engineInfo() json.RawMessage {
	_, v, _ := n.engineRuntime()
	e := nodestate.PeerEngine{Release: v.Release, Server: v.Server, RPCProtocol: v.RPCProtocol, OS: runtime.GOOS}
	n.mu.Lock()
	if w := n.worker; w != nil && w.Versions().Release != v.Release {
		e.Worker = w.Versions().Release
	}
	n.mu.Unlock()
	data, _ := json.Marshal(e)
	return data
}

func decodeEngine(raw json.RawMessage) *nodestate.PeerEngine {
	if len(raw) == 0 {
		return nil
	}
	var e nodestate.PeerEngine
	if json.Unmarshal(raw, &e) != nil {
		return nil
	}
	return &e
}

// maybeMatch starts matching the worker to the heads in the pool when
// they speak another RPC protocol than it does.
func (n *Node) maybeMatch() {
	n.mu.Lock()
	mode, w, busy, ctx := n.shareLocked(), n.worker, n.matching, n.runCtx
	n.mu.Unlock()
	if mode != nodestate.ShareWorker || w == nil || busy || ctx == nil || n.cfg.Llama.ProvisionDir == "" {
		return
	}
	var heads []nodestate.Peer
	for _, p := range n.Peers() {
		if len(p.Head) > 0 {
			heads = append(heads, p)
		}
	}
	need, ok := worker.NeededRelease(heads, w.Versions().RPCProtocol)
	if !ok {
		return
	}
	n.mu.Lock()
	if n.matching {
		n.mu.Unlock()
		return
	}
	n.matching = true
	n.mu.Unlock()
	go func() {
		defer func() {
			n.mu.Lock()
			n.matching = false
			n.mu.Unlock()
		}()
		if err := n.match(ctx, need); err != nil && ctx.Err() == nil {
			n.log.Warn("could not run the llama.cpp a head needs", "release", need.Release, "head", need.Head, "err", err)
			n.warn(nodestate.Warning{Code: "worker-version", Severity: nodestate.SeverityWarning, Message: fmt.Sprintf(
				"%s splits with llama.cpp %s (RPC %s), which this computer could not get: %v", need.Head, need.Release, need.Protocol, err)})
		}
	}()
}

// match runs the release a head needs on the worker, and restarts the
// worker with it.
func (n *Node) match(ctx context.Context, need worker.Need) error {
	if err := n.llama.Lend(ctx, need); err != nil {
		return err
	}
	n.opMu.Lock()
	defer n.opMu.Unlock()
	n.mu.Lock()
	mode := n.shareLocked()
	n.mu.Unlock()
	if mode != nodestate.ShareWorker {
		return nil
	}
	n.stopWorker()
	if err := n.reexpose(); err != nil {
		return err
	}
	n.clearWarning("worker-version")
	n.llama.Prune(need.Release)
	_, v, _, _ := n.llama.WorkerRuntime()
	n.log.Info("the shard worker now speaks the head's llama.cpp", "release", v.Release, "rpc", v.RPCProtocol, "head", need.Head)
	return nil
}
