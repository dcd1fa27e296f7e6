package app

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/nodestate"
)

func (n *Node) engineInfo() json.RawMessage {
	_, v, _ := n.engineRuntime()
	e := nodestate.PeerEngine{Release: v.Release, Server: v.Server, RPCProtocol: v.RPCProtocol, OS: runtime.GOOS}
	n.mu.Lock()
	if w := n.worker; w != nil && w.versions.Release != v.Release {
		e.Worker = w.versions.Release
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

// headNeed is a release that heads in the pool run and this node's worker
// does not speak, and a head that needs it.
type headNeed struct {
	release, protocol string
	head              string // its name
}

// neededRelease looks at the heads in the pool (peers that serve a model
// as a split's head) and returns the release the worker should run to
// lend to them: none while it speaks the protocol of one of them already,
// so that a worker never leaves a split it is in; otherwise the release of
// the most heads, the lowest peer id breaking ties.
func neededRelease(heads []nodestate.Peer, speaks string) (headNeed, bool) {
	type group struct {
		need  headNeed
		count int
		first string
	}
	var groups []*group
	for _, p := range heads {
		e := p.Engine
		if e == nil || e.RPCProtocol == "" || e.Release == "" || len(p.Head) == 0 || !p.Online {
			continue
		}
		if e.RPCProtocol == speaks {
			return headNeed{}, false
		}
		i := slices.IndexFunc(groups, func(g *group) bool { return g.need.protocol == e.RPCProtocol })
		if i < 0 {
			groups = append(groups, &group{need: headNeed{e.Release, e.RPCProtocol, p.Name}, first: p.ID})
			i = len(groups) - 1
		}
		g := groups[i]
		g.count++
		if p.ID < g.first {
			g.first, g.need.head = p.ID, p.Name
		}
	}
	if len(groups) == 0 {
		return headNeed{}, false
	}
	slices.SortFunc(groups, func(a, b *group) int { return cmp.Or(b.count-a.count, cmp.Compare(a.first, b.first)) })
	return groups[0].need, true
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
	need, ok := neededRelease(heads, w.versions.RPCProtocol)
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
			n.log.Warn("could not run the llama.cpp a head needs", "release", need.release, "head", need.head, "err", err)
			n.warn(nodestate.Warning{Code: "worker-version", Severity: nodestate.SeverityWarning, Message: fmt.Sprintf(
				"%s splits with llama.cpp %s (RPC %s), which this computer could not get: %v", need.head, need.release, need.protocol, err)})
		}
	}()
}

// match provisions the release a head runs, for this machine, and
// restarts the worker with it.
func (n *Node) match(ctx context.Context, need headNeed) error {
	n.log.Info("a head splits with another llama.cpp; lending with its version", "head", need.head, "release", need.release, "rpc", need.protocol)
	var rt engine.Runtime
	_, own, _ := n.engineRuntime()
	if own.Release == need.release {
		rt, _, _ = n.engineRuntime()
	} else {
		b, ok := n.store().Find(need.release, "")
		if !ok {
			var err error
			b, err = n.install(ctx, need.release, need.head+"'s split")
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
	if v.RPCProtocol != need.protocol {
		return fmt.Errorf("llama.cpp %s speaks RPC %s, not the head's %s", need.release, v.RPCProtocol, need.protocol)
	}
	n.opMu.Lock()
	defer n.opMu.Unlock()
	n.mu.Lock()
	if own.RPCProtocol == v.RPCProtocol {
		n.lend = nil
	} else {
		n.lend = &lendRuntime{rt: rt, versions: v, forName: need.head}
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
	for _, b := range n.store().Prune(need.release, n.cfg.Engine.version()) {
		n.log.Info("removed an unused llama.cpp build", "build", b.Name())
	}
	n.log.Info("the shard worker now speaks the head's llama.cpp", "release", v.Release, "rpc", v.RPCProtocol, "head", need.head)
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
