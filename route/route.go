// Package route answers which nodes serve a model: this node's own, and
// the members that share as servers, with what each model does and how
// busy each node is. The API routes each request by it.
package route

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/host"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/server"
)

// Router lists the pool's models and the backends of each; it implements
// server.Router.
type Router struct {
	cfg   Config
	mesh  Mesh
	local func() *host.Host
	log   *slog.Logger
	peers peerModels
}

// Config is how a Router names this node and reaches the others.
type Config struct {
	Name    string       // this node's name
	Service string       // the mesh service of a member's model API
	Client  *http.Client // asks members what their model does
	Log     *slog.Logger
}

// Mesh is the network as a router sees it; in no network, Self is "",
// Peers is empty and Tunnel fails.
type Mesh interface {
	Self() string
	Peers() []nodestate.Peer
	Tunnel(ctx context.Context, peerID, service string) (addr string, err error)
}

var _ server.Router = (*Router)(nil)

// New returns a router; local is the host of this node's model, nil when
// it serves none.
func New(cfg Config, mesh Mesh, local func() *host.Host) *Router {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	return &Router{cfg: cfg, mesh: mesh, local: local, log: cfg.Log}
}

// nodeLabel is how a serving node is named in X-Potluck-Node.
func nodeLabel(name, id string) string {
	if id == "" {
		return name
	}
	return name + "/" + id
}

func (r *Router) selfLabel() string { return nodeLabel(r.cfg.Name, r.mesh.Self()) }

// Models implements server.Router: this node's model and every model the
// online federated peers serve, with the nodes that serve each.
func (r *Router) Models() []server.Model {
	byID := map[string]*server.Model{}
	if h := r.local(); h != nil {
		st := h.Status()
		state := st.State.State.String()
		if st.Detail != "" && !st.Ready {
			state = st.Detail
		}
		am := h.APIModel()
		byID[st.ID] = &server.Model{ID: st.ID, Ready: st.Ready, State: state, Nodes: []string{r.selfLabel()},
			Capabilities: am.Capabilities, Details: am.Details}
	}
	for _, p := range r.mesh.Peers() {
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
			if pm, ok := r.peerModel(p, id); ok {
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
func (r *Router) Backends(model string) ([]server.Backend, error) {
	models := r.Models()
	if len(models) == 0 {
		return nil, server.ErrNoModel
	}
	if model == "" && len(models) == 1 {
		model = models[0].ID
	}
	var hostPath, hostAlias string
	mh := r.local()
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
			out = append(out, server.Backend{Node: r.selfLabel(), BaseURL: "http://" + addr,
				Load: mh.InFlight(), LoadAt: time.Now()})
		}
	}
	for _, p := range r.mesh.Peers() {
		if !p.Online || p.Mode != nodestate.ShareServer || !slices.Contains(p.Models, model) {
			continue
		}
		addr, err := r.mesh.Tunnel(context.Background(), p.ID, r.cfg.Service)
		if err != nil {
			r.log.Warn("peer unreachable", "name", p.Name, "err", err)
			continue
		}
		// What it last announced, every client's requests included.
		out = append(out, server.Backend{Node: nodeLabel(p.Name, p.ID), BaseURL: "http://" + addr,
			Load: p.InFlight, LoadAt: time.Now().Add(-time.Duration(p.LastSeenMS) * time.Millisecond)})
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
