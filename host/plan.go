package host

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/nodestate"
)

// makePlan plans the model over this node and the online workers.
func (h *Host) makePlan() engine.Plan {
	_, versions, _ := h.node.Runtime()
	head := engine.Candidate{ID: "self", Name: h.cfg.Name, RPCProtocol: versions.RPCProtocol, Local: true}
	if self := h.mesh.Self(); self != "" {
		head.ID = self
	}
	devices, choice := h.node.Devices()
	for _, d := range devices {
		head.Devices = append(head.Devices, planDevice(d))
	}
	if cpu := len(head.Devices) - 1; cpu >= 0 && head.Devices[cpu].Offer == 0 {
		// No hardware report, or a cap of nothing: the head still
		// serves what it can on its own CPU.
		head.Devices[cpu].Offer = h.est.TotalBytes
	}
	in := engine.PlanInput{Model: h.est, Head: head, Protocol: versions.RPCProtocol, Mode: h.cfg.Split, Devices: choice}
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
	for _, p := range h.mesh.Peers() {
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
			c.RPCProtocol = svc[h.cfg.RPCService].Version
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
	planWith := func(head []engine.PlanDevice) engine.Plan {
		in := in
		in.Head.Devices = head
		plan := engine.MakePlan(in)
		plan.Model = h.alias
		plan.Excluded = append(plan.Excluded, excluded...)
		return plan
	}
	plan := planWith(head.Devices)
	h.planDraft(&plan, head.Devices, planWith)
	return plan
}

// samePlan reports whether two plans start the same llama-server.
func samePlan(a, b engine.Plan) bool {
	return a.Fits == b.Fits && a.GPULayers == b.GPULayers && slices.Equal(a.ServerDevices, b.ServerDevices) &&
		slices.Equal(a.Workers, b.Workers) && slices.Equal(a.TensorSplit, b.TensorSplit) &&
		sameDraft(a.Draft, b.Draft)
}

// sameDraft says whether two plans run the same draft the same way.
func sameDraft(a, b *engine.DraftPlan) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Path == b.Path && a.Lookup == b.Lookup && a.Device == b.Device && a.Max == b.Max
}

func (h *Host) exclude(id, reason string) {
	h.mu.Lock()
	h.excluded[id] = exclusion{until: time.Now().Add(excludeFor), reason: reason}
	h.mu.Unlock()
	h.log.Warn("worker left out of the plan", "peer_id", id, "reason", reason)
}

// replanCheck is how often a served model is re-planned without news.
const replanCheck = 15 * time.Second

// replanned plans again and says whether the plan differs from plan (the
// caller then restarts llama-server with it); if not, it keeps the new
func (h *Host) replanned(plan engine.Plan) bool {
	np := h.makePlan()
	if !samePlan(np, plan) {
		h.log.Info("plan changed; restarting llama-server", "workers", np.Workers)
		return true
	}
	h.mu.Lock()
	h.plan = np
	h.mu.Unlock()
	return false
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

// lendsHere says whether a worker peer lends to this node.
func lendsHere(p nodestate.Peer, self string) bool {
	return len(p.LendTo) == 0 || slices.Contains(p.LendTo, self)
}

// planDevice is what the planner knows of a device.
func planDevice(d nodestate.DeviceInfo) engine.PlanDevice {
	return engine.PlanDevice{Name: d.Name, Backend: d.Backend, Description: d.Description, Offer: d.Offer, Speed: d.Speed}
}

// Plan is the plan this host would serve its model with now, with the
// pool as it is; an error when the model cannot be read.
func (h *Host) Plan() (engine.Plan, error) {
	h.mu.Lock()
	err := h.estErr
	h.mu.Unlock()
	if err != nil {
		return engine.Plan{}, err
	}
	return h.makePlan(), nil
}
