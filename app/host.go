package app

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/internal/size"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/nodestate"
)

// modelHost serves the configured model. It is the head of a split: it plans
// which machines hold which layers, starts llama-server with the chosen
// workers' tunnels, and re-plans when workers come and go or one dies.
type modelHost struct {
	n    *Node
	name string // what the user asked for: a path, a library name or a reference

	// alias, path and est are set once the model is on this machine:
	// at once, or after a pull. Read them under mu, or from run.
	alias string
	path  string

	est    engine.ModelEstimate
	estErr error
	info   engine.ModelInfo // what the file says it is for

	trigger chan struct{}

	proxy *servedProxy // in front of llama-server; counts what it serves

	shas []string // sha256 of the model's files, once known
	size uint64   // bytes of the model's files

	cancel context.CancelFunc // stops run; set by startHost
	done   chan struct{}      // closed when run returned

	mu       sync.Mutex
	sup      *engine.Supervisor // the running llama-server, if any
	port     int
	plan     engine.Plan
	detail   string               // what the host waits for, for people
	excluded map[string]exclusion // workers left out after a failure
	nodes    int
}

type exclusion struct {
	until  time.Time
	reason string
}

// excludeFor is how long a worker that failed stays out of plans unless it
// rejoins the mesh sooner.
const excludeFor = 30 * time.Second

func newModelHost(n *Node, name string) *modelHost {
	h := &modelHost{
		n: n, name: name,
		trigger:  make(chan struct{}, 1),
		excluded: map[string]exclusion{},
		detail:   "starting",
	}
	if path, alias, ok := n.findModel(h.name); ok {
		h.setModel(path, alias)
	}
	return h
}

// setModel makes the file at path the model, served as alias.
func (h *modelHost) setModel(path, alias string) {
	est, err := engine.EstimateModel(path, h.n.cfg.CtxSize)
	info, ierr := engine.DescribeModel(path)
	if ierr != nil {
		h.n.log.Warn("cannot tell what the model is for; serving it as a chat model", "model", path, "err", ierr)
	}
	h.mu.Lock()
	h.path, h.alias, h.est, h.estErr, h.info = path, alias, est, err, info
	h.mu.Unlock()
}

// ident is the model's path and the name it is served under; before a
// pull ends, no path and the name asked for.
func (h *modelHost) ident() (path, alias string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.path == "" {
		return "", h.name
	}
	return h.path, h.alias
}

// fetch pulls the model when it is not on this machine yet. It reports
// progress in the model's status and fails with a warning.
func (h *modelHost) fetch(ctx context.Context) bool {
	if path, _ := h.ident(); path != "" {
		return true
	}
	var (
		m   library.Model
		err error
	)
	for {
		h.setDetail(nil, "getting "+h.name)
		var last time.Time
		m, err = h.n.Pull(ctx, h.name, func(p hub.Progress) {
			if p.Total > 0 && time.Since(last) > time.Second {
				last = time.Now()
				from := ""
				if p.From != "" && p.From != "hub" {
					from = " from " + p.From
				}
				h.setDetail(nil, fmt.Sprintf("getting %s%s: %s of %s", h.name, from, size.Format(uint64(p.Completed)), size.Format(uint64(p.Total))))
			}
		})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return false
		}
		// Peers that have it may join later, and a hub may come back:
		// try again when the pool changes, or in a while.
		msg := "cannot get " + h.name + ": " + err.Error()
		var nf *library.NotFoundError
		if errors.As(err, &nf) {
			msg = "waiting for a peer that has " + h.name + " (it is not on this computer, and not a Hugging Face reference)"
		}
		h.n.warn(nodestate.Warning{Code: "model", Severity: nodestate.SeverityError, Message: msg})
		h.setDetail(nil, msg)
		select {
		case <-ctx.Done():
			return false
		case <-h.trigger:
		case <-time.After(time.Minute):
		}
	}
	h.n.clearWarning("model")
	h.setModel(m.Path, m.Name)
	return true
}

// kick asks for a re-plan.
func (h *modelHost) kick() {
	select {
	case h.trigger <- struct{}{}:
	default:
	}
}

// peerChanged re-plans when a worker may have changed.
func (h *modelHost) peerChanged(t netmesh.EventType, p nodestate.Peer) {
	if t == netmesh.PeerJoined {
		h.mu.Lock()
		delete(h.excluded, p.ID) // back after being offline: give it a chance
		h.mu.Unlock()
	}
	if path, _ := h.ident(); path == "" || p.Mode == nodestate.ShareWorker || t != netmesh.PeerUpdated {
		h.kick() // re-plan, or look again for a peer that has the model
	}
}

// makePlan plans the model over this node and the online workers.
func (h *modelHost) makePlan() engine.Plan {
	n := h.n
	_, versions, _ := n.engineRuntime()
	head := engine.Candidate{ID: "self", Name: n.cfg.Name, RPCProtocol: versions.RPCProtocol, Local: true}
	if s := n.currentMesh(); s != nil {
		head.ID = s.node.ID()
	}
	for _, d := range n.headDevices() {
		head.Devices = append(head.Devices, planDevice(d))
	}
	if cpu := len(head.Devices) - 1; cpu >= 0 && head.Devices[cpu].Offer == 0 {
		// No hardware report, or a cap of nothing: the head still
		// serves what it can on its own CPU.
		head.Devices[cpu].Offer = h.est.TotalBytes
	}
	in := engine.PlanInput{Model: h.est, Head: head, Protocol: versions.RPCProtocol, Mode: n.cfg.Split, Devices: n.deviceChoice()}
	now := time.Now()
	var excluded []engine.Exclusion
	h.mu.Lock()
	for id, e := range h.excluded {
		if now.After(e.until) {
			delete(h.excluded, id)
		}
	}
	ex := maps.Clone(h.excluded)
	current := slices.Clone(h.plan.Workers)
	h.mu.Unlock()
	for _, p := range n.Peers() {
		if !p.Online || p.Mode != nodestate.ShareWorker {
			continue
		}
		if e, ok := ex[p.ID]; ok {
			excluded = append(excluded, engine.Exclusion{ID: p.ID, Name: p.Name, Reason: e.reason})
			continue
		}
		if !lendsHere(p, head.ID) {
			excluded = append(excluded, engine.Exclusion{ID: p.ID, Name: p.Name, Reason: "lends its devices to some members only, not to this computer"})
			continue
		}
		if why := splitUnfit(p, slices.Contains(current, p.ID)); why != "" {
			excluded = append(excluded, engine.Exclusion{ID: p.ID, Name: p.Name, Reason: why})
			continue
		}
		c := engine.Candidate{ID: p.ID, Name: p.Name, RTT: time.Duration(p.MinRTTMS * float64(time.Millisecond))}
		if svc, ok := p.Services.(map[string]netmesh.ServiceInfo); ok {
			c.RPCProtocol = svc[serviceRPC].Version
		}
		for _, d := range p.Devices {
			c.Devices = append(c.Devices, planDevice(d))
		}
		if len(c.Devices) == 0 {
			// An older Potluck: its whole offer, on its CPU.
			c.Devices = []engine.PlanDevice{{Name: "CPU", Backend: "CPU", Offer: p.MemoryOffered, Speed: engine.CPUSpeed(0)}}
		}
		in.Workers = append(in.Workers, c)
	}
	plan := engine.MakePlan(in)
	plan.Model = h.alias
	plan.Excluded = append(plan.Excluded, excluded...)
	return plan
}

// samePlan reports whether two plans start the same llama-server.
func samePlan(a, b engine.Plan) bool {
	return a.Fits == b.Fits && a.GPULayers == b.GPULayers && slices.Equal(a.ServerDevices, b.ServerDevices) &&
		slices.Equal(a.Workers, b.Workers) && slices.Equal(a.TensorSplit, b.TensorSplit)
}

func (h *modelHost) setDetail(plan *engine.Plan, detail string) {
	h.mu.Lock()
	if plan != nil {
		h.plan = *plan
	}
	h.detail = detail
	h.mu.Unlock()
	h.n.events.publish(nodestate.Event{Kind: nodestate.EventStatus})
}

// run serves the model until ctx ends.
func (h *modelHost) run(ctx context.Context) error {
	if !h.fetch(ctx) {
		<-ctx.Done()
		return nil
	}
	proxy, err := h.runServedProxy(ctx)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.proxy = proxy
	h.mu.Unlock()
	if path, _ := h.ident(); path != "" {
		shas, size := h.n.modelFiles(ctx, path)
		h.mu.Lock()
		h.shas, h.size = shas, size
		h.mu.Unlock()
		h.n.publishInfo() // workers that have the file prepare their copy
	}
	if h.estErr != nil {
		h.n.warn(nodestate.Warning{Code: "model", Severity: nodestate.SeverityError, Message: h.estErr.Error()})
		h.setDetail(nil, "cannot read the model: "+h.estErr.Error())
		<-ctx.Done()
		return nil
	}
	for ctx.Err() == nil {
		plan := h.makePlan()
		if !plan.Fits {
			h.n.warn(nodestate.Warning{Code: "model-fit", Severity: nodestate.SeverityError, Message: fmt.Sprintf("%s does not fit: %s", h.alias, plan.Reason)})
			h.setDetail(&plan, "does not fit: "+plan.Reason)
			if !h.waitFor(ctx, replanCheck) {
				return nil
			}
			continue
		}
		h.n.clearWarning("model-fit")
		h.awaitSeeds(ctx, plan)
		rpc, err := h.tunnels(ctx, plan)
		if err != nil {
			h.setDetail(&plan, "re-planning: "+err.Error())
			continue
		}
		h.serve(ctx, plan, rpc)
	}
	return nil
}

// wait blocks until a re-plan is asked for; false when ctx ended.
func (h *modelHost) wait(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-h.trigger:
		return true
	}
}

// waitFor is wait, or d, whichever comes first.
func (h *modelHost) waitFor(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-h.trigger:
	case <-t.C:
	}
	return true
}

// tunnels dials each planned worker's RPC service. A worker that cannot be
// reached is excluded for a while and the error says so.
func (h *modelHost) tunnels(ctx context.Context, plan engine.Plan) ([]string, error) {
	if len(plan.Workers) == 0 {
		return nil, nil
	}
	s := h.n.currentMesh()
	if s == nil {
		return nil, errors.New("left the network")
	}
	var addrs []string
	for _, id := range plan.Workers {
		addr, err := s.tunnel(ctx, id, serviceRPC)
		if err == nil {
			err = probeRPC(ctx, addr)
		}
		if err != nil {
			h.exclude(id, "unreachable: "+err.Error())
			s.closeTunnels(id)
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

func (h *modelHost) exclude(id, reason string) {
	h.mu.Lock()
	h.excluded[id] = exclusion{until: time.Now().Add(excludeFor), reason: reason}
	h.mu.Unlock()
	h.n.log.Warn("worker left out of the plan", "peer_id", id, "reason", reason)
}

// serve runs llama-server for plan until the plan changes, llama-server
// stops, or ctx ends.
func (h *modelHost) serve(ctx context.Context, plan engine.Plan, rpc []string) {
	n := h.n
	rt, _, err := n.engineRuntime()
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
	spec := engine.ServerSpec{Model: h.path, Alias: h.alias, Port: port, CtxSize: n.cfg.CtxSize, Threads: n.cfg.Threads,
		RPC: rpc, Devices: plan.ServerDevices, GPULayers: plan.GPULayers, TensorSplit: plan.TensorSplit}
	if len(plan.ServerDevices) == 0 {
		// Everything on the CPU, whatever llama.cpp would pick.
		spec.Devices = []string{"none"}
	}
	h.serving().Apply(&spec)
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
	ss.Log = n.log.With("part", "engine")
	ss.LogFile = n.logPath("llama-server")
	split := len(rpc) > 0
	ss.Exited = func(err error, tail []string) bool {
		// A split llama-server aborts when a worker dies. That is news for
		// the planner, not a reason to restart with the same plan.
		return !split
	}
	sup := engine.NewSupervisor(ss)
	h.mu.Lock()
	h.sup, h.port, h.nodes = sup, port, len(plan.Nodes)
	h.mu.Unlock()
	h.setDetail(&plan, "loading")

	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sup.Run(sctx) }()
	defer func() {
		cancel()
		<-done
		h.mu.Lock()
		h.sup, h.port = nil, 0
		h.mu.Unlock()
		n.events.publish(nodestate.Event{Kind: nodestate.EventStatus})
	}()
	readyCh := sup.Changed()
	// While it loads, say how much of the workers' part has gone to them.
	s := n.currentMesh()
	var sentBefore uint64
	if s != nil {
		sentBefore = s.tunnelSent(plan.Workers, serviceRPC)
	}
	progress := time.NewTicker(time.Second)
	defer progress.Stop()
	recheck := time.NewTicker(replanCheck)
	defer recheck.Stop()
	for {
		select {
		case <-progress.C:
			if s == nil || remote == 0 || sup.Status().State == engine.StateReady {
				continue
			}
			sent := s.tunnelSent(plan.Workers, serviceRPC) - sentBefore
			h.setDetail(nil, fmt.Sprintf("loading: %s of about %s sent to the workers", size.Format(sent), size.Format(remote)))
		case <-ctx.Done():
			return
		case <-readyCh:
			readyCh = sup.Changed()
			if sup.Status().State == engine.StateReady {
				h.setDetail(nil, "")
				n.clearWarning("worker-lost")
				n.clearWarning("model-failed")
				n.log.Info("model ready", "model", h.alias, "nodes", len(plan.Nodes), "workers", len(rpc))
				n.events.publish(nodestate.Event{Kind: nodestate.EventModelReady, Message: h.alias + " is ready"})
				n.opMu.Lock()
				if err := n.reexpose(); err != nil {
					n.log.Warn("expose the model", "err", err)
				}
				n.opMu.Unlock()
			}
		case err := <-done:
			done <- err // for the deferred wait
			if split {
				h.setDetail(nil, "a worker was lost; re-planning")
				n.log.Warn("split llama-server stopped; checking workers", "err", err)
				h.checkWorkers(ctx, plan, rpc)
				return
			}
			h.setDetail(nil, "llama-server failed: "+err.Error())
			n.warn(nodestate.Warning{Code: "model-failed", Severity: nodestate.SeverityError, Message: err.Error()})
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

// replanCheck is how often a served model is re-planned without news.
const replanCheck = 15 * time.Second

// replanned plans again and says whether the plan differs from plan (the
// caller then restarts llama-server with it); if not, it keeps the new
// plan's exclusions to show.
func (h *modelHost) replanned(plan engine.Plan) bool {
	np := h.makePlan()
	if !samePlan(np, plan) {
		h.n.log.Info("plan changed; restarting llama-server", "workers", np.Workers)
		return true
	}
	h.mu.Lock()
	h.plan = np
	h.mu.Unlock()
	return false
}

// checkWorkers probes every worker of a failed split and excludes the dead.
func (h *modelHost) checkWorkers(ctx context.Context, plan engine.Plan, rpc []string) {
	s := h.n.currentMesh()
	for i, id := range plan.Workers {
		if err := probeRPC(ctx, rpc[i]); err != nil {
			name := id
			for _, a := range plan.Nodes {
				if a.ID == id {
					name = a.Name
				}
			}
			h.n.warn(nodestate.Warning{Code: "worker-lost", Severity: nodestate.SeverityWarning,
				Message: fmt.Sprintf("worker %s was lost while serving %s; re-planning without it", name, h.alias)})
			h.exclude(id, "lost during serving: "+err.Error())
			if s != nil {
				s.closeTunnels(id)
			}
		}
	}
}

// localAddr is where the running model answers (through the counting
// proxy), or "" while it does not.
func (h *modelHost) localAddr() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sup == nil || h.sup.Status().State != engine.StateReady || h.proxy == nil {
		return ""
	}
	return h.proxy.addr
}

// status describes the model for Status.
func (h *modelHost) status() *nodestate.ModelStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := &nodestate.ModelStatus{ID: h.alias, Path: h.path, Detail: h.detail, Nodes: h.nodes}
	if h.path == "" {
		st.ID = h.name
	}
	if h.plan.Fits {
		st.TokensPerSecond = h.plan.TokensPerSecond
		for _, a := range h.plan.Devices {
			if a.Layers > 0 || a.Output {
				st.Holders = append(st.Holders, nodestate.Holder{Name: a.NodeName, Device: a.Device, Local: a.Local, Layers: a.Layers, Bytes: a.Bytes, Share: a.Share})
			}
		}
	}
	for _, e := range h.plan.Excluded {
		who := e.Name
		if e.Device != "" {
			who += " " + e.Device
		}
		st.Excluded = append(st.Excluded, who+": "+e.Reason)
	}
	if h.sup != nil {
		st.State = h.sup.Status()
		st.Ready = st.State.State == engine.StateReady
	}
	return st
}

// currentPlan is the plan being served (or that failed).
func (h *modelHost) currentPlan() (engine.Plan, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.plan, h.detail
}

// maxSplitRTT is the longest round trip to a worker that a split takes:
// a split waits on every worker for every token.
const maxSplitRTT = 150 * time.Millisecond

// splitUnfit says why a worker cannot be part of a split, or "" if it can.
// Requests may still go to such a peer whole (federated). A worker already
// in the split keeps its place whatever its round trip: loading the split
// fills the links, and the round trips measured then say nothing of the
// distance.
func splitUnfit(p nodestate.Peer, inSplit bool) string {
	switch {
	case p.Conn == netmesh.ConnRelayed || p.Conn == netmesh.ConnRelayLost:
		return "reached only through a relay: a split needs a direct connection (see \"Friends across the internet\" in the README)"
	case !inSplit && p.MinRTTMS > float64(maxSplitRTT/time.Millisecond):
		return fmt.Sprintf("round trip of %.0f ms: a split needs under %d ms to every worker", p.MinRTTMS, maxSplitRTT/time.Millisecond)
	}
	return ""
}
