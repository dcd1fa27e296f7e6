package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/internal/size"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/speculate"
)

// Host serves the configured model. It is the head of a split: it plans
// which machines hold which layers, starts llama-server with the chosen
// workers' tunnels, and re-plans when workers come and go or one dies.
type Host struct {
	cfg  Config
	mesh Mesh
	node Node
	log  *slog.Logger
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

	draft    *draftPick         // the draft chosen, once looked for
	draftOff string             // why the draft was switched off, if it was
	tracker  *speculate.Tracker // measures the draft at work
	trying   bool               // the draft decodes its trial: not ready yet
}

type exclusion struct {
	until  time.Time
	reason string
}

// excludeFor is how long a worker that failed stays out of plans unless it
// rejoins the mesh sooner.
const excludeFor = 30 * time.Second

// New prepares a host for the model name (a path, a library name or a
// reference); it starts nothing. SetModel says where the file is when it
// is on this machine already; otherwise Run pulls it first.
func New(cfg Config, mesh Mesh, node Node, name string) *Host {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.RPCService == "" {
		cfg.RPCService = DefaultRPCService
	}
	return &Host{
		cfg: cfg, mesh: mesh, node: node, log: cfg.Log, name: name,
		trigger:  make(chan struct{}, 1),
		excluded: map[string]exclusion{},
		detail:   "starting",
	}
}

// setModel makes the file at path the model, served as alias.
func (h *Host) SetModel(path, alias string) {
	est, err, info, ierr := engine.InspectModel(path, h.cfg.CtxSize)
	if ierr != nil {
		h.log.Warn("cannot tell what the model is for; serving it as a chat model", "model", path, "err", ierr)
	}
	h.mu.Lock()
	h.path, h.alias, h.est, h.estErr, h.info = path, alias, est, err, info
	h.mu.Unlock()
}

// Ident is the model's path and the name it is served under; before a
// pull ends, no path and the name asked for.
func (h *Host) Ident() (path, alias string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.path == "" {
		return "", h.name
	}
	return h.path, h.alias
}

// fetch pulls the model when it is not on this machine yet. It reports
// progress in the model's status and fails with a warning.
func (h *Host) fetch(ctx context.Context) bool {
	if path, _ := h.Ident(); path != "" {
		return true
	}
	var (
		m   library.Model
		err error
	)
	for {
		h.setDetail(nil, "getting "+h.name)
		var last time.Time
		m, err = h.node.Pull(ctx, h.name, func(p hub.Progress) {
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
		h.node.Warn(nodestate.Warning{Code: "model", Severity: nodestate.SeverityError, Message: msg})
		h.setDetail(nil, msg)
		select {
		case <-ctx.Done():
			return false
		case <-h.trigger:
		case <-time.After(time.Minute):
		}
	}
	h.node.ClearWarning("model")
	h.node.ClearWarning("model-restarted")
	h.SetModel(m.Path, m.Name)
	return true
}

// Kick asks for a re-plan.
func (h *Host) Kick() {
	select {
	case h.trigger <- struct{}{}:
	default:
	}
}

// PeerChanged re-plans when a worker may have changed.
func (h *Host) PeerChanged(t netmesh.EventType, p nodestate.Peer) {
	if t == netmesh.PeerJoined {
		h.mu.Lock()
		delete(h.excluded, p.ID) // back after being offline: give it a chance
		h.mu.Unlock()
	}
	if path, _ := h.Ident(); path == "" || p.Mode == nodestate.ShareWorker || t != netmesh.PeerUpdated {
		h.Kick() // re-plan, or look again for a peer that has the model
	}
}

func (h *Host) setDetail(plan *engine.Plan, detail string) {
	h.mu.Lock()
	if plan != nil {
		h.plan = *plan
	}
	h.detail = detail
	h.mu.Unlock()
	h.node.Changed()
}

// run serves the model until ctx ends.
func (h *Host) run(ctx context.Context) error {
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
	if path, _ := h.Ident(); path != "" {
		shas, size := h.node.ModelFiles(ctx, path)
		h.mu.Lock()
		h.shas, h.size = shas, size
		h.mu.Unlock()
		h.node.Announce() // workers that have the file prepare their copy
	}
	if h.estErr != nil {
		h.node.Warn(nodestate.Warning{Code: "model", Severity: nodestate.SeverityError, Message: h.estErr.Error()})
		h.setDetail(nil, "cannot read the model: "+h.estErr.Error())
		<-ctx.Done()
		return nil
	}
	for ctx.Err() == nil {
		plan := h.makePlan()
		if !plan.Fits {
			h.node.Warn(nodestate.Warning{Code: "model-fit", Severity: nodestate.SeverityError, Message: fmt.Sprintf("%s does not fit: %s", h.alias, plan.Reason)})
			h.setDetail(&plan, "does not fit: "+plan.Reason)
			if !h.waitFor(ctx, replanCheck) {
				return nil
			}
			continue
		}
		h.node.ClearWarning("model-fit")
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
func (h *Host) wait(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-h.trigger:
		return true
	}
}

// waitFor is wait, or d, whichever comes first.
func (h *Host) waitFor(ctx context.Context, d time.Duration) bool {
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

// Status describes the model for Status.
func (h *Host) Status() *nodestate.ModelStatus {
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
	st.Draft, st.NoDraft = h.draftStatus(), h.plan.NoDraft
	if h.sup != nil {
		st.State = h.sup.Status()
		if h.trying {
			st.State.State = engine.StateStarting
		}
		st.Ready = st.State.State == engine.StateReady
	}
	return st
}

// CurrentPlan is the plan being served (or that failed).
func (h *Host) CurrentPlan() (engine.Plan, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.plan, h.detail
}

// Name is the model as asked for: a path, a library name or a reference.
func (h *Host) Name() string { return h.name }

// Start runs the host until ctx ends or Stop.
func (h *Host) Start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	h.cancel, h.done = cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		_ = h.run(ctx)
	}()
}

// Stop ends a started host and waits until its llama-server is gone.
func (h *Host) Stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
}

// Files are the sha256 of the model's files, once known.
func (h *Host) Files() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.shas)
}

// Footprint is the memory the model takes on this machine: its part of
// the plan once planned, else the estimate of all of it.
func (h *Host) Footprint() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.plan.Fits {
		var b uint64
		for _, d := range h.plan.Devices {
			if d.Local {
				b += d.Bytes
			}
		}
		if b > 0 {
			return b
		}
	}
	return h.est.TotalBytes
}

// Unfit says why the model does not fit this machine and the pool's
// workers as planned last; "" when it fits, or before a plan.
func (h *Host) Unfit() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sup == nil && !h.plan.Fits {
		return h.plan.Reason
	}
	return ""
}
