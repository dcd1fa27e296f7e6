package app

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/potluck-gpu/potluck/engine"
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

// lendRuntime is the llama.cpp this node's RPC worker runs when a head in
// the pool speaks another RPC protocol than the node's own llama.cpp.
type lendRuntime struct {
	rt       engine.Runtime
	versions engine.Versions
	forName  string // the head it matches
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

// match provisions the release a head runs, for this machine, and
// restarts the worker with it.
func (n *Node) match(ctx context.Context, need worker.Need) error {
	n.log.Info("a head splits with another llama.cpp; lending with its version", "head", need.Head, "release", need.Release, "rpc", need.Protocol)
	var rt engine.Runtime
	_, own, _ := n.engineRuntime()
	if own.Release == need.Release {
		rt, _, _ = n.engineRuntime()
	} else {
		b, ok := n.store().Find(need.Release, "")
		if !ok {
			var err error
			b, err = n.install(ctx, need.Release, need.Head+"'s split")
			n.mu.Lock()
			n.provisioning = nil
			n.mu.Unlock()
			n.events.publish(nodestate.Event{Kind: nodestate.EventStatus})
			if err != nil {
				return err
			}
		}
		var err error
		if rt, err = b.Runtime(); err != nil {
			return err
		}
		rt = rt.Confined(n.confinement())
	}
	v, err := rt.Probe(ctx)
	if err != nil {
		return err
	}
	if v.RPCProtocol != need.Protocol {
		return fmt.Errorf("llama.cpp %s speaks RPC %s, not the head's %s", need.Release, v.RPCProtocol, need.Protocol)
	}
	n.opMu.Lock()
	defer n.opMu.Unlock()
	n.mu.Lock()
	if own.RPCProtocol == v.RPCProtocol {
		n.lend = nil
	} else {
		n.lend = &lendRuntime{rt: rt, versions: v, forName: need.Head}
	}
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
	for _, b := range n.store().Prune(need.Release, n.cfg.Engine.version()) {
		n.log.Info("removed an unused llama.cpp build", "build", b.Name())
	}
	n.log.Info("the shard worker now speaks the head's llama.cpp", "release", v.Release, "rpc", v.RPCProtocol, "head", need.Head)
	return nil
}

// workerRuntime is the llama.cpp the RPC worker runs: the one matched to
// the pool's heads, or the node's own.
func (n *Node) workerRuntime() (rt engine.Runtime, v engine.Versions, matches string, err error) {
	n.mu.Lock()
	l := n.lend
	n.mu.Unlock()
	if l != nil {
		return l.rt, l.versions, l.forName, nil
	}
	rt, v, err = n.engineRuntime()
	return rt, v, "", err
}
