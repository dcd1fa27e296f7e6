package llama

import (
	"context"
	"fmt"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/worker"
)

// lendRuntime is the llama.cpp the shard worker runs when a head in the
// pool speaks another RPC protocol than the node's own llama.cpp.
type lendRuntime struct {
	rt       engine.Runtime
	versions engine.Versions
	forName  string // the head it matches
}

// Lend makes the worker's llama.cpp the release a head needs (see
// worker.NeededRelease): the node's own when that speaks the head's
// protocol, otherwise the release, provisioned for this machine. The
// caller restarts the worker with WorkerRuntime, then Prunes what the
// old one ran.
func (k *Keeper) Lend(ctx context.Context, need worker.Need) error {
	k.log.Info("a head splits with another llama.cpp; lending with its version", "head", need.Head, "release", need.Release, "rpc", need.Protocol)
	rt, own, _ := k.Runtime()
	if own.Release != need.Release {
		b, ok := k.cfg.Store.Find(need.Release, "")
		if !ok {
			var err error
			b, err = k.Install(ctx, need.Release, need.Head+"'s split")
			k.mu.Lock()
			k.progress = nil
			k.mu.Unlock()
			k.node.Changed()
			if err != nil {
				return err
			}
		}
		var err error
		if rt, err = b.Runtime(); err != nil {
			return err
		}
		rt = rt.Confined(k.cfg.Confinement)
	}
	v, err := rt.Probe(ctx)
	if err != nil {
		return err
	}
	if v.RPCProtocol != need.Protocol {
		return fmt.Errorf("llama.cpp %s speaks RPC %s, not the head's %s", need.Release, v.RPCProtocol, need.Protocol)
	}
	k.mu.Lock()
	if own.RPCProtocol == v.RPCProtocol {
		k.lend = nil
	} else {
		k.lend = &lendRuntime{rt: rt, versions: v, forName: need.Head}
	}
	k.mu.Unlock()
	return nil
}

// WorkerRuntime is the llama.cpp the shard worker runs: the one matched to
// the pool's heads, or the node's own; matches names the head matched.
func (k *Keeper) WorkerRuntime() (rt engine.Runtime, v engine.Versions, matches string, err error) {
	k.mu.Lock()
	l := k.lend
	k.mu.Unlock()
	if l != nil {
		return l.rt, l.versions, l.forName, nil
	}
	rt, v, err = k.Runtime()
	return rt, v, "", err
}
