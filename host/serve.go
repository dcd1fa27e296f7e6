package host

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/internal/size"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/speculate"
)

// tunnels dials each planned worker's RPC service. A worker that cannot be
// reached is excluded for a while and the error says so.
func (h *Host) tunnels(ctx context.Context, plan engine.Plan) ([]string, error) {
	if len(plan.Workers) == 0 {
		return nil, nil
	}
	var addrs []string
	for _, id := range plan.Workers {
		addr, err := h.mesh.Tunnel(ctx, id, h.cfg.RPCService)
		if err == nil {
			err = probeRPC(ctx, addr)
		}
		if err != nil {
			h.exclude(id, "unreachable: "+err.Error())
			h.mesh.CloseTunnels(id)
			return nil, fmt.Errorf("worker %s: %w", id, err)
		}
		addrs = append(addrs, addr)
	}
	return addrs, nil
}

// probeRPC checks that a worker answers through its tunnel: the tunnel
// accepts locally at once and closes the connection if the stream to the
// worker fails, while a live worker waits for the client to speak first.
func probeRPC(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(750 * time.Millisecond))
	var b [1]byte
	_, err = c.Read(b[:])
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	if err == nil {
		return errors.New("the worker spoke first: not a llama.cpp RPC server")
	}
	return fmt.Errorf("connection closed (%v)", err)
}

// serve runs llama-server for plan until the plan changes, llama-server
// stops, or ctx ends.
func (h *Host) serve(ctx context.Context, plan engine.Plan, rpc []string) {
	rt, _, err := h.node.Runtime()
	if err != nil {
		h.setDetail(&plan, err.Error())
		h.wait(ctx)
		return
	}
	port, err := engine.FreePort()
	if err != nil {
		h.setDetail(&plan, err.Error())
		return
	}
	spec := engine.ServerSpec{Model: h.path, Alias: h.alias, Port: port, CtxSize: h.cfg.CtxSize, Threads: h.cfg.Threads,
		RPC: rpc, Devices: plan.ServerDevices, GPULayers: plan.GPULayers, TensorSplit: plan.TensorSplit}
	if len(plan.ServerDevices) == 0 {
		// Everything on the CPU, whatever llama.cpp would pick.
		spec.Devices = []string{"none"}
	}
	h.Serving().Apply(&spec)
	var tracker *speculate.Tracker
	if d := plan.Draft; d != nil {
		if d.Lookup != "" {
			spec.Speculate = d.Lookup
		} else {
			spec.Draft = d.Spec(h.cfg.DraftMin)
		}
		tracker = newTracker(plan)
	}
	ss := rt.ServerSupervisorSpec(spec)
	// A load is never killed while it progresses; the hard cap leaves
	// room for the weights sent to workers at a slow 10 MB/s.
	var remote uint64
	for _, d := range plan.Devices {
		if !d.Local {
			remote += d.Bytes
		}
	}
	ss.ReadyLimit = 10*time.Minute + time.Duration(remote/10e6)*time.Second
	ss.Log = h.log.With("part", "engine")
	ss.LogFile = h.cfg.LogFile
	split := len(rpc) > 0
	ss.Exited = func(err error, tail []string) bool {
		// A split llama-server aborts when a worker dies. That is news for
		// the planner, not a reason to restart with the same plan.
		if split {
			return false
		}
		why, _, _ := strings.Cut(err.Error(), "; last output:")
		h.node.Warn(nodestate.Warning{Code: "model-restarted", Severity: nodestate.SeverityWarning,
			Message: fmt.Sprintf("%s stopped at %s and is restarted: %s", h.alias, time.Now().Format("15:04:05"), why)})
		return true
	}
	sup := engine.NewSupervisor(ss)
	h.mu.Lock()
	h.sup, h.port, h.nodes, h.tracker = sup, port, len(plan.Nodes), tracker
	h.mu.Unlock()
	h.setDetail(&plan, "loading")

	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sup.Run(sctx) }()
	defer func() {
		cancel()
		<-done
		h.mu.Lock()
		h.sup, h.port, h.tracker, h.trying = nil, 0, nil, false
		h.mu.Unlock()
		h.node.Changed()
	}()
	readyCh := sup.Changed()
	trial, tried := needsTrial(plan), make(chan []byte, 1)
	// While it loads, say how much of the workers' part has gone to them.
	sentBefore := h.mesh.TunnelSent(plan.Workers, h.cfg.RPCService)
	progress := time.NewTicker(time.Second)
	defer progress.Stop()
	recheck := time.NewTicker(replanCheck)
	defer recheck.Stop()
	for {
		select {
		case <-progress.C:
			if remote == 0 || sup.Status().State == engine.StateReady {
				continue
			}
			sent := h.mesh.TunnelSent(plan.Workers, h.cfg.RPCService) - sentBefore
			h.setDetail(nil, fmt.Sprintf("loading: %s of about %s sent to the workers", size.Format(sent), size.Format(remote)))
		case <-ctx.Done():
			return
		case <-readyCh:
			readyCh = sup.Changed()
			if sup.Status().State != engine.StateReady {
				continue
			}
			if trial {
				// A draft model not measured yet decodes a few tokens
				// before anyone is served.
				trial = false
				h.mu.Lock()
				h.trying = true
				h.mu.Unlock()
				h.setDetail(nil, fmt.Sprintf("trying the draft %s", plan.Draft.Model))
				go func() { tried <- h.tryDraft(sctx, port) }()
				continue
			}
			h.ready(plan, rpc)
		case answer := <-tried:
			tried = nil
			if answer != nil {
				h.measureDraft(answer)
			}
			h.mu.Lock()
			h.trying = false
			off := h.tracker != tracker
			h.mu.Unlock()
			if !off && sup.Status().State == engine.StateReady {
				h.ready(plan, rpc)
			} // else switched off: the re-plan it asked for restarts without
		case err := <-done:
			done <- err // for the deferred wait
			if split {
				h.setDetail(nil, "a worker was lost; re-planning")
				h.log.Warn("split llama-server stopped; checking workers", "err", err)
				h.checkWorkers(ctx, plan, rpc)
				return
			}
			h.setDetail(nil, "llama-server failed: "+err.Error())
			h.node.Warn(nodestate.Warning{Code: "model-failed", Severity: nodestate.SeverityError, Message: err.Error()})
			h.wait(ctx)
			return
		case <-h.trigger:
			if h.replanned(plan) {
				return
			}
		case <-recheck.C:
			// What no event announces: an exclusion that ran out, a
			// round trip that came down.
			if h.replanned(plan) {
				return
			}
		}
	}
}

// ready announces the model served with plan.
func (h *Host) ready(plan engine.Plan, rpc []string) {
	h.setDetail(nil, "")
	h.node.ClearWarning("worker-lost")
	h.node.ClearWarning("model-failed")
	h.log.Info("model ready", "model", h.alias, "nodes", len(plan.Nodes), "workers", len(rpc))
	h.node.Ready(h.alias)
}

// checkWorkers probes every worker of a failed split and excludes the dead.
func (h *Host) checkWorkers(ctx context.Context, plan engine.Plan, rpc []string) {
	for i, id := range plan.Workers {
		if err := probeRPC(ctx, rpc[i]); err != nil {
			name := id
			for _, a := range plan.Nodes {
				if a.ID == id {
					name = a.Name
				}
			}
			h.node.Warn(nodestate.Warning{Code: "worker-lost", Severity: nodestate.SeverityWarning,
				Message: fmt.Sprintf("worker %s was lost while serving %s; re-planning without it", name, h.alias)})
			h.exclude(id, "lost during serving: "+err.Error())
			h.mesh.CloseTunnels(id)
		}
	}
}

// LocalAddr is where the running model answers (through the counting
// proxy), or "" while it does not.
func (h *Host) LocalAddr() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sup == nil || h.sup.Status().State != engine.StateReady || h.trying || h.proxy == nil {
		return ""
	}
	return h.proxy.addr
}

// awaitSeeds holds the head's load until the planned workers that have
// the model file have it in their tensor cache, for as long as copying it
// could take.
func (h *Host) awaitSeeds(ctx context.Context, plan engine.Plan) {
	h.mu.Lock()
	shas, size := slices.Clone(h.shas), h.size
	h.mu.Unlock()
	if len(shas) == 0 || len(plan.Workers) == 0 {
		return
	}
	deadline := time.Now().Add(30*time.Second + time.Duration(size/(100<<20))*time.Second)
	for {
		var waiting []string
		peers := h.mesh.Peers()
		for _, id := range plan.Workers {
			i := slices.IndexFunc(peers, func(p nodestate.Peer) bool { return p.ID == id })
			if i < 0 || !peers[i].Online {
				continue
			}
			p := peers[i]
			has, seeded := true, true
			for _, sha := range shas {
				has = has && slices.ContainsFunc(p.Files, func(f nodestate.OfferedFile) bool { return f.SHA256 == sha })
				seeded = seeded && slices.Contains(p.Seeded, sha)
			}
			if has && !seeded {
				waiting = append(waiting, p.Name)
			}
		}
		if len(waiting) == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.log.Warn("workers did not prepare their copy of the model in time; sending the weights", "workers", waiting)
			return
		}
		h.setDetail(&plan, "waiting for "+strings.Join(waiting, ", ")+" to load the model from their own copy")
		select {
		case <-ctx.Done():
			return
		case <-time.After(300 * time.Millisecond):
		}
	}
}
