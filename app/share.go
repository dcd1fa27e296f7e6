package app

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/settings"
	"github.com/potluck-gpu/potluck/worker"
)

// shareLocked is the share mode in force. The caller holds mu.
func (n *Node) shareLocked() nodestate.ShareMode {
	if n.shareHeld {
		return nodestate.ShareOff
	}
	return n.settings.Get().ShareMode()
}

func (n *Node) shareMemoryLocked() uint64 { return n.settings.Get().ShareMemory }

// Share implements tray.Controller.
func (n *Node) Share(ctx context.Context, mode nodestate.ShareMode, memory uint64) (err error) {
	if _, ok := nodestate.ParseShareMode(string(mode)); !ok {
		return &nodestate.InputError{Field: "mode", Value: string(mode), Msg: `want "off", "worker" or "server"`}
	}
	if mode == nodestate.ShareServer && n.modelHost() == nil && !n.hasModels() {
		return &nodestate.InputError{Field: "mode", Value: string(mode), Msg: "sharing as a full server needs a model: pick one to serve first (`potluck run --model NAME`, or the tray's \"Serve a model…\"), or put one in the library for members' requests to load"}
	}
	if mode == nodestate.ShareWorker {
		if err := n.llama.Wait(ctx); err != nil {
			return err
		}
		if rt, _, _ := n.engineRuntime(); rt.Worker.Path == "" {
			return fmt.Errorf("this llama.cpp has no RPC worker (rpc-server): install one with `potluck engine install`")
		}
	}
	n.opMu.Lock()
	defer n.opMu.Unlock()

	prev := n.settings.Get()
	n.mu.Lock()
	held := n.shareHeld
	n.shareHeld = false
	n.mu.Unlock()
	if err := n.settings.Modify(func(s *settings.Settings) {
		s.ShareMemory = memory // 0: the default offer
		s.Share = mode
		if mode != nodestate.ShareOff {
			s.ShareAs = mode
		}
	}); err != nil {
		n.log.Warn("save settings", "err", err)
	}
	defer func() {
		if err == nil {
			return
		}
		// The change did not happen: status must not say it did.
		n.mu.Lock()
		n.shareHeld = held
		n.mu.Unlock()
		n.modify(func(s *settings.Settings) {
			s.Share, s.ShareMemory, s.ShareAs = prev.Share, prev.ShareMemory, prev.ShareAs
		})
		if rerr := n.reexpose(); rerr != nil {
			n.log.Warn("restoring the previous sharing", "err", rerr)
		}
		n.events.publish(nodestate.Event{Kind: nodestate.EventStatus})
	}()

	if mode != nodestate.ShareOff && n.currentMesh() == nil {
		// Sharing never needs a settings page first: start a new mesh
		// whose token the user can copy as the invite. This computer
		// holds its owner key, so it alone can remove members.
		owner, err := netmesh.OwnerKey(n.cfg.DataDir)
		if err != nil {
			return err
		}
		token, err := netmesh.NewOwnedToken(owner.GetPublic())
		if err != nil {
			return err
		}
		n.forgetRetired()
		s, err := n.openSession(ctx, token, sessionOptions{})
		if err != nil {
			return err
		}
		n.modify(func(s *settings.Settings) { s.Token = token })
		n.installMesh(s)
		n.log.Info("started a new network; copy its invite token to add machines")
	}
	if err := n.reexpose(); err != nil {
		return err
	}
	n.publishInfo()
	n.maybeSeed()
	n.maybeMatch()
	return nil
}

// hasModels says whether this machine has a model on disk: a server that
// serves none loads one when a member asks for it.
func (n *Node) hasModels() bool {
	models, _ := n.lib.List()
	return len(models) > 0
}

// SetShareAs implements tray.Controller: the mode sharing turns on in. A
// computer shared in the other mode switches to it.
func (n *Node) SetShareAs(ctx context.Context, mode nodestate.ShareMode) error {
	if mode != nodestate.ShareWorker && mode != nodestate.ShareServer {
		return &nodestate.InputError{Field: "share as", Value: string(mode), Msg: `want "worker" or "server"`}
	}
	n.mu.Lock()
	cur := n.shareLocked()
	n.mu.Unlock()
	if cur != nodestate.ShareOff && cur != mode {
		return n.Share(ctx, mode, n.settings.Get().ShareMemory)
	}
	return n.settings.Modify(func(s *settings.Settings) { s.ShareAs = mode })
}

// reexpose makes the worker and the mesh services match the share mode. The
// caller holds opMu.
func (n *Node) reexpose() error {
	n.mu.Lock()
	mode := n.shareLocked()
	n.mu.Unlock()
	s := n.currentMesh()
	if mode == nodestate.ShareWorker {
		w, err := n.startWorker()
		if err != nil {
			return err
		}
		if s != nil {
			if err := s.node.Expose(serviceRPC, w.GateAddr()); err != nil {
				return err
			}
		}
	} else {
		n.stopWorker()
		if s != nil {
			s.node.Unexpose(serviceRPC)
		}
	}
	if s != nil {
		n.mu.Lock()
		swarmAddr := n.swarmAddr
		n.mu.Unlock()
		if mode != nodestate.ShareOff && swarmAddr != "" {
			if err := s.node.Expose(serviceModels, swarmAddr); err != nil {
				return err
			}
		} else {
			s.node.Unexpose(serviceModels)
		}
		n.mu.Lock()
		front := n.frontAddr
		n.mu.Unlock()
		if mode == nodestate.ShareServer && front != "" {
			// One door for every model here: it hands each request to
			// its model's host, and loads one a member asks for.
			if err := s.node.Expose(serviceOpenAI, front); err != nil {
				return err
			}
		} else {
			s.node.Unexpose(serviceOpenAI)
		}
	}
	n.publishInfo()
	return nil
}

// startWorker starts the RPC worker, or returns the running one. A worker
// that exposes other devices than the node now lends is restarted.
func (n *Node) startWorker() (*worker.Worker, error) {
	var devices []string
	for _, d := range lent(n.localDevices(), n.deviceChoice()) {
		devices = append(devices, d.Name)
	}
	n.mu.Lock()
	w, runCtx := n.worker, n.runCtx
	n.mu.Unlock()
	if w != nil && slices.Equal(w.Devices(), devices) {
		return w, nil
	}
	if w != nil {
		n.log.Info("the devices lent changed; restarting the shard worker", "devices", devices)
		n.stopWorker()
	}
	rt, versions, matches, err := n.llama.WorkerRuntime()
	if err != nil {
		return nil, err
	}
	w, err = worker.Start(runCtx, worker.Spec{Runtime: rt, Versions: versions, Matches: matches, Devices: devices,
		Threads: n.cfg.Threads, CacheDir: n.rpcCache(), Budget: n.gateBudget,
		LogFile: n.logPath("rpc-server"), Log: n.log.With("part", "worker"),
		Stopped: func(err error) {
			n.warn(nodestate.Warning{Code: "worker", Severity: nodestate.SeverityError, Message: "the shard worker stopped: " + err.Error()})
		},
	}, workerMembers{hostMesh{n}})
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.worker = w
	n.mu.Unlock()
	n.clearWarning("worker")
	n.log.Info("sharing as a shard worker", "rpc", w.Addr(), "devices", strings.Join(devices, ","), "llama.cpp", versions.Server)
	return w, nil
}

// stopWorker stops the RPC worker, if any.
func (n *Node) stopWorker() {
	n.mu.Lock()
	w := n.worker
	n.worker = nil
	n.mu.Unlock()
	if w != nil {
		w.Stop()
	}
}
