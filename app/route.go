package app

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/host"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/server"
)

// nodeLabel is how a serving node is named in X-Potluck-Node.
func nodeLabel(name, id string) string {
	if id == "" {
		return name
	}
	return name + "/" + id
}

func (n *Node) selfLabel() string {
	id := ""
	if s := n.currentMesh(); s != nil {
		id = s.node.ID()
	}
	return nodeLabel(n.cfg.Name, id)
}

// Models implements server.Router: this node's model and every model the
// online federated peers serve, with the nodes that serve each.
func (n *Node) Models() []server.Model {
	byID := map[string]*server.Model{}
	if h := n.modelHost(); h != nil {
		st := h.Status()
		state := st.State.State.String()
		if st.Detail != "" && !st.Ready {
			state = st.Detail
		}
		am := h.APIModel()
		byID[st.ID] = &server.Model{ID: st.ID, Ready: st.Ready, State: state, Nodes: []string{n.selfLabel()},
			Capabilities: am.Capabilities, Details: am.Details}
	}
	for _, p := range n.Peers() {
		if !p.Online || p.Mode != nodestate.ShareServer {
			continue
		}
		for _, id := range p.Models {
			m, ok := byID[id]
			if !ok {
				m = &server.Model{ID: id, State: "ready"}
				byID[id] = m
			}
			m.Ready = true
			m.Nodes = append(m.Nodes, nodeLabel(p.Name, p.ID))
			// What the peer's model does, once it said: the union over
			// the nodes serving it (one may serve embeddings, another not).
			if pm, ok := n.peerModel(p, id); ok {
				for _, c := range pm.Capabilities {
					if !slices.Contains(m.Capabilities, c) {
						m.Capabilities = append(m.Capabilities, c)
					}
				}
				if m.Details == nil {
					m.Details = pm.Details
				}
			}
		}
	}
	out := make([]server.Model, 0, len(byID))
	for _, m := range byID {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Backends implements server.Router.
func (n *Node) Backends(model string) ([]server.Backend, error) {
	models := n.Models()
	if len(models) == 0 {
		return nil, server.ErrNoModel
	}
	if model == "" && len(models) == 1 {
		model = models[0].ID
	}
	var hostPath, hostAlias string
	mh := n.modelHost()
	if mh != nil {
		hostPath, hostAlias = mh.Ident()
		if hostPath != "" && (model == hostPath || model == filepath.Base(hostPath)) {
			model = hostAlias
		}
	}
	idx := slices.IndexFunc(models, func(m server.Model) bool { return m.ID == model })
	if idx < 0 {
		ids := make([]string, len(models))
		for i, m := range models {
			ids[i] = m.ID
		}
		return nil, &server.UnknownModelError{Model: model, Available: ids}
	}
	var out []server.Backend
	if mh != nil && hostAlias == model {
		if addr := mh.LocalAddr(); addr != "" {
			// Its count is live, and already holds this node's requests.
			out = append(out, server.Backend{Node: n.selfLabel(), BaseURL: "http://" + addr,
				Load: n.servedInFlight(), LoadAt: time.Now()})
		}
	}
	if s := n.currentMesh(); s != nil {
		for _, p := range n.Peers() {
			if !p.Online || p.Mode != nodestate.ShareServer || !slices.Contains(p.Models, model) {
				continue
			}
			addr, err := s.tunnel(context.Background(), p.ID, serviceOpenAI)
			if err != nil {
				n.log.Warn("peer unreachable", "name", p.Name, "err", err)
				continue
			}
			// What it last announced, every client's requests included.
			out = append(out, server.Backend{Node: nodeLabel(p.Name, p.ID), BaseURL: "http://" + addr,
				Load: p.InFlight, LoadAt: time.Now().Add(-time.Duration(p.LastSeenMS) * time.Millisecond)})
		}
	}
	if len(out) == 0 {
		if mh != nil && hostAlias == model {
			st := mh.Status()
			if st.State.State == engine.StateFailed {
				return nil, errors.New("the model failed to start: " + st.State.LastError)
			}
			if st.Detail != "" {
				return nil, errors.Join(server.ErrLoading, errors.New(st.Detail))
			}
		}
		return nil, server.ErrLoading
	}
	return out, nil
}

// Plan returns the current plan, or for model (a GGUF path) the plan this
// node would make for it with the pool as it is now.
func (n *Node) Plan(model string) nodestate.PlanView {
	var hostPath, hostAlias string
	mh := n.modelHost()
	if mh != nil {
		hostPath, hostAlias = mh.Ident()
	}
	if model != "" && (mh == nil || (model != hostPath && model != hostAlias)) {
		path, alias, ok := n.findModel(model)
		if !ok {
			return nodestate.PlanView{Model: model, Error: (&library.NotFoundError{Name: model}).Error()}
		}
		h := host.New(host.Config{Name: n.cfg.Name, CtxSize: n.cfg.CtxSize, Split: n.cfg.Split, RPCService: serviceRPC},
			hostMesh{n}, hostNode{n}, model)
		h.SetModel(path, alias)
		p, err := h.Plan()
		if err != nil {
			return nodestate.PlanView{Model: alias, Error: err.Error()}
		}
		return nodestate.PlanView{Model: alias, Detail: "not being served: what this node would do now", Plan: &p}
	}
	if mh == nil {
		return nodestate.PlanView{Error: "this node serves no model: start it with --model PATH, or ask for a plan with ?model=PATH"}
	}
	p, detail := mh.CurrentPlan()
	return nodestate.PlanView{Model: hostAlias, Detail: detail, Plan: &p}
}
