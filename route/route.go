// Package route answers which nodes serve a model: this node's own, and
// the members that share as servers, with what each model does and how
// busy each node is. The API routes each request by it.
package route

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/host"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/sched"
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

	// Sched loads this node's models on request; nil: only the model
	// the node serves is served here.
	Sched *sched.Scheduler
	// Library lists the models on this machine; nil: none listed.
	Library func() []library.Model
	// HeadMemory is the memory this machine offers a model on its own; a
	// model larger needs a split. nil: not said.
	HeadMemory func() uint64
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

// Models implements server.Router: every model the pool can serve, with
// where it is: loaded here, on this machine's disk, loaded on a member,
// or on a member's disk (a member that shares as a server loads it on
// request).
func (r *Router) Models() []server.Model {
	byID := map[string]*server.Model{}
	self := r.selfLabel()
	if h := r.local(); h != nil {
		st := h.Status()
		am := h.APIModel()
		byID[st.ID] = &server.Model{ID: st.ID, Ready: st.Ready, State: hostState(st), Nodes: []string{self},
			Capabilities: am.Capabilities, Details: am.Details, Availability: availability(st.Ready, server.AvailLoaded)}
	}
	if s := r.cfg.Sched; s != nil {
		for _, l := range s.Loaded() {
			if l.Pinned {
				continue
			}
			st := l.Model.Status()
			m := &server.Model{ID: l.Key, Ready: st.Ready, State: hostState(st), Nodes: []string{self},
				Availability: availability(st.Ready, server.AvailLoaded)}
			if h, ok := l.Model.(*host.Host); ok {
				am := h.APIModel()
				m.Capabilities, m.Details = am.Capabilities, am.Details
			}
			if !l.Expires.IsZero() {
				m.ExpiresAt = &l.Expires
			}
			byID[l.Key] = m
		}
	}
	if r.cfg.Library != nil {
		head := uint64(0)
		if r.cfg.HeadMemory != nil {
			head = r.cfg.HeadMemory()
		}
		for _, lm := range r.cfg.Library() {
			if _, ok := byID[lm.Name]; ok {
				continue
			}
			avail := server.AvailOnDisk
			if head > 0 && lm.Size > head {
				avail = server.AvailSplit
			}
			byID[lm.Name] = &server.Model{ID: lm.Name, State: "on disk", Availability: avail,
				Details: &server.ModelDetails{Bytes: lm.Size, Digest: lm.SHA256}}
		}
	}
	for _, p := range r.mesh.Peers() {
		if !p.Online || p.Mode != nodestate.ShareServer {
			continue
		}
		for _, id := range p.Models {
			m, ok := byID[id]
			if !ok || !m.Ready {
				if !ok {
					m = &server.Model{ID: id}
					byID[id] = m
				}
				m.Ready, m.State, m.Availability, m.Nodes = true, "ready", server.AvailPeerLoaded, nil
			}
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
	for _, pm := range r.peerLibrary() {
		if _, ok := byID[pm.name]; ok {
			continue
		}
		byID[pm.name] = &server.Model{ID: pm.name, State: "on disk on " + strings.Join(pm.names, ", "),
			Availability: server.AvailPeerDisk, Details: &server.ModelDetails{Bytes: pm.size}}
	}
	out := make([]server.Model, 0, len(byID))
	for _, m := range byID {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// hostState is a host's state for people: llama-server's, or what the
// host waits for.
func hostState(st *nodestate.ModelStatus) string {
	if st.Detail != "" && !st.Ready {
		return st.Detail
	}
	return st.State.State.String()
}

func availability(ready bool, loaded string) string {
	if ready {
		return loaded
	}
	return server.AvailLoading
}

// peerDisk is a model on the disks of members that share as servers.
type peerDisk struct {
	name  string
	size  uint64
	ids   []string // their peer ids
	names []string // their names
}

// peerLibrary lists what the online members that share as servers have
// on disk, by model name.
func (r *Router) peerLibrary() []peerDisk {
	var peers []library.Peer
	for _, p := range r.mesh.Peers() {
		if p.Online && p.Mode == nodestate.ShareServer && len(p.Files) > 0 {
			peers = append(peers, library.Peer{ID: p.ID, Name: p.Name, Files: p.Files})
		}
	}
	models, _ := library.PeerModels(peers)
	var out []peerDisk
	idx := map[string]int{}
	for _, m := range models {
		i, ok := idx[m.Name]
		if !ok {
			i = len(out)
			idx[m.Name] = i
			out = append(out, peerDisk{name: m.Name, size: m.Size})
		}
		who := strings.TrimPrefix(m.Source, "peer ")
		for _, p := range peers {
			if p.Name == who && !slices.Contains(out[i].ids, p.ID) && slices.ContainsFunc(p.Files, func(f library.PeerFile) bool { return f.Model == m.Name }) {
				out[i].ids = append(out[i].ids, p.ID)
				out[i].names = append(out[i].names, p.Name)
			}
		}
	}
	return out
}

// Backends implements server.Router. A model on this machine that is not
// loaded is loaded (once, however many ask); one only members have on
// disk goes to them, and they load it.
func (r *Router) Backends(model string) ([]server.Backend, error) {
	models := r.Models()
	if len(models) == 0 {
		return nil, server.ErrNoModel
	}
	var hostPath, hostAlias string
	mh := r.local()
	if mh != nil {
		hostPath, hostAlias = mh.Ident()
		if hostPath != "" && (model == hostPath || model == filepath.Base(hostPath)) {
			model = hostAlias
		}
	}
	if model == "" {
		model = r.onlyModel(models, hostAlias)
	}
	idx := slices.IndexFunc(models, func(m server.Model) bool { return m.ID == model })
	key, here := "", false
	if r.cfg.Sched != nil && model != "" && model != hostAlias {
		key, here = r.cfg.Sched.Resolve(model)
		if here {
			idx = slices.IndexFunc(models, func(m server.Model) bool { return m.ID == key })
			model = key
		}
	}
	if idx < 0 && !here {
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
	var loaded sched.Model
	if here {
		if m, ok := r.cfg.Sched.Get(key); ok {
			r.cfg.Sched.Touch(key)
			loaded = m
			if addr := m.LocalAddr(); addr != "" {
				out = append(out, server.Backend{Node: r.selfLabel(), BaseURL: "http://" + addr,
					Load: m.InFlight(), LoadAt: time.Now()})
			}
		}
	}
	out = append(out, r.peerBackends(model, func(p nodestate.Peer) bool { return slices.Contains(p.Models, model) })...)
	if len(out) > 0 {
		return out, nil
	}
	if mh != nil && hostAlias == model {
		return nil, loadState(mh.Status())
	}
	if here {
		if loaded == nil {
			m, err := r.cfg.Sched.Load(key, nil)
			if err != nil {
				return nil, errors.Join(server.ErrLoading, err)
			}
			loaded = m
		}
		if h, ok := loaded.(*host.Host); ok {
			if why := h.Unfit(); why != "" {
				// Not here, nor split over the workers: a server that
				// has it may load it, else the pool must change first.
				r.cfg.Sched.Unload(key)
				if out := r.peerDiskBackends(model); len(out) > 0 {
					return out, nil
				}
				return nil, fmt.Errorf("%s does not fit this machine and the pool's workers now: %s", key, why)
			}
		}
		if err := loadState(loaded.Status()); errors.Is(err, server.ErrLoading) {
			return nil, errors.Join(server.ErrLoadingOnRequest, err)
		} else {
			return nil, err
		}
	}
	if out := r.peerDiskBackends(model); len(out) > 0 {
		return out, nil
	}
	return nil, server.ErrLoading
}

// peerDiskBackends are the members that have model on disk and share as
// servers: they load it. One that loads nothing for members
// (--allow-peer-loads=false) is asked only when no other has it: its
// refusal says why.
func (r *Router) peerDiskBackends(model string) []server.Backend {
	var out []server.Backend
	for _, pd := range r.peerLibrary() {
		if pd.name != model {
			continue
		}
		has := func(p nodestate.Peer) bool { return slices.Contains(pd.ids, p.ID) }
		out = r.peerBackends(model, func(p nodestate.Peer) bool { return has(p) && !p.NoPeerLoads })
		if len(out) == 0 {
			out = r.peerBackends(model, has)
		}
	}
	return out
}

// onlyModel is the model a request that names none gets: the one this
// node serves, else the only one loaded, else the only one there is.
func (r *Router) onlyModel(models []server.Model, hostAlias string) string {
	if hostAlias != "" {
		return hostAlias
	}
	var ready []string
	for _, m := range models {
		if m.Ready {
			ready = append(ready, m.ID)
		}
	}
	if len(ready) == 1 {
		return ready[0]
	}
	if len(models) == 1 {
		return models[0].ID
	}
	return ""
}

// loadState is the error of a model of this node's that cannot serve yet.
func loadState(st *nodestate.ModelStatus) error {
	if st.State.State == engine.StateFailed {
		return errors.New("the model failed to start: " + st.State.LastError)
	}
	if st.Detail != "" {
		return errors.Join(server.ErrLoading, errors.New(st.Detail))
	}
	return server.ErrLoading
}

// peerBackends are the online members that share as servers and of which
// pick says yes, through their tunnels.
func (r *Router) peerBackends(model string, pick func(nodestate.Peer) bool) []server.Backend {
	var out []server.Backend
	for _, p := range r.mesh.Peers() {
		if !p.Online || p.Mode != nodestate.ShareServer || !pick(p) {
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
	return out
}

var _ server.Loader = (*Router)(nil)

// KeepAlive implements server.Loader for the models on this machine; the
// model the node serves stays as it is.
func (r *Router) KeepAlive(model string, d *time.Duration) error {
	if r.cfg.Sched == nil {
		return nil
	}
	key, ok := r.cfg.Sched.Resolve(model)
	if !ok {
		return nil // a member's, or none: Backends says
	}
	if h := r.local(); h != nil {
		if _, alias := h.Ident(); alias == key {
			return nil
		}
	}
	if _, loaded := r.cfg.Sched.Get(key); !loaded && d == nil {
		return nil // Backends loads it, here or where it is served
	}
	if _, err := r.cfg.Sched.Load(key, d); err != nil && !errors.Is(err, sched.ErrBusy) {
		return err // no room yet: Backends waits for some
	}
	return nil
}

// Unload implements server.Loader.
func (r *Router) Unload(model string) bool {
	if r.cfg.Sched == nil {
		return false
	}
	key, ok := r.cfg.Sched.Resolve(model)
	return ok && r.cfg.Sched.Unload(key)
}
