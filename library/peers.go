package library

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/swarm"
)

// A Peer is a machine of the network, online, and the model files it lets
// others copy.
type Peer struct {
	ID, Name string
	Files    []PeerFile
}

// PeerFile is a file a peer offers.
type PeerFile struct {
	Model  string `json:"model"` // the library name of its model
	File   string `json:"file"`  // its file name
	SHA256 string `json:"sha256"`
	Size   uint64 `json:"size"`
}

// PeerModels lists what peers offer as models that Match can search, one
// per model and peer, and who has each file, by sha256.
func PeerModels(peers []Peer) ([]Model, map[string][]Peer) {
	var models []Model
	holders := map[string][]Peer{}
	idx := map[string]int{}
	for _, p := range peers {
		for _, f := range p.Files {
			if len(f.SHA256) != 64 || f.File == "" || f.Model == "" {
				continue
			}
			holders[f.SHA256] = append(holders[f.SHA256], p)
			key := f.Model + "\x00" + p.ID
			i, ok := idx[key]
			if !ok {
				i = len(models)
				idx[key] = i
				models = append(models, Model{Name: f.Model, Source: "peer " + p.Name})
			}
			m := &models[i]
			m.Files = append(m.Files, File{Path: f.File, Size: f.Size, SHA256: f.SHA256})
			m.Size += f.Size
		}
	}
	for i := range models {
		m := &models[i]
		slices.SortFunc(m.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
		m.Path = m.Files[0].Path
		if len(m.Files) == 1 {
			m.SHA256 = m.Files[0].SHA256
		}
	}
	return models, holders
}

// Peers is the network's peers as a Source: a model's files are copied
// from every peer that has them at once (see package swarm), into Store.
type Peers struct {
	Lib    *Library
	Store  string
	Client *http.Client
	// Online lists the peers online now; none outside a network.
	Online func() []Peer
	// Dial returns the URL a peer's swarm server answers at, e.g. a
	// tunnel to it.
	Dial func(ctx context.Context, peerID string) (string, error)
	Log  *slog.Logger // nil: no log
}

var _ Source = (*Peers)(nil)

// Name implements Source.
func (*Peers) Name() string { return "peers" }

// Has implements Source: an online peer offers the model.
func (p *Peers) Has(ref string) bool {
	models, _ := PeerModels(p.Online())
	_, ok := Match(models, ref)
	return ok
}

// Fetch implements Source.
func (p *Peers) Fetch(ctx context.Context, ref string, progress func(hub.Progress)) (Model, error) {
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	models, holders := PeerModels(p.Online())
	want, ok := Match(models, ref)
	if !ok {
		return Model{}, fmt.Errorf("no peer has %s now", ref)
	}
	// Where it goes: the same name in this store, ':' made a path.
	dir := p.Store
	rel := strings.NewReplacer(":", "-", "\\", "-").Replace(want.Name)
	var paths []string
	for _, f := range want.Files {
		dest := filepath.Join(dir, filepath.FromSlash(rel)+".gguf")
		if len(want.Files) > 1 {
			dest = filepath.Join(dir, filepath.FromSlash(path.Dir(rel)), f.Path)
		}
		if !filepath.IsLocal(strings.TrimPrefix(dest, dir+string(filepath.Separator))) || filepath.Base(f.Path) != f.Path {
			return Model{}, fmt.Errorf("a peer names its model %q, which is no plain path", want.Name)
		}
		var sources []swarm.Source
		for _, h := range holders[f.SHA256] {
			id := h.ID
			sources = append(sources, swarm.Source{Name: h.Name, Base: func(ctx context.Context) (string, error) {
				return p.Dial(ctx, id)
			}})
		}
		status := "pulling " + f.SHA256[:12]
		log.Info("copying a model file from peers", "model", want.Name, "file", f.Path, "peers", len(sources))
		err := swarm.Fetch(ctx, p.Client, sources, f.SHA256, int64(f.Size), dest, func(sp swarm.Progress) {
			if sp.Dropped != "" {
				log.Warn("peer dropped from a copy", "why", sp.Dropped)
			}
			peers := make([]hub.PeerBytes, len(sp.Peers))
			for k, ps := range sp.Peers {
				peers[k] = hub.PeerBytes{Name: ps.Name, Completed: ps.Bytes}
			}
			progress(hub.Progress{Status: status, Digest: "sha256:" + f.SHA256, Total: sp.Total, Completed: sp.Completed,
				File: want.Name, From: strings.Join(sp.From, ", "), Peers: peers})
		})
		if err != nil {
			return Model{}, err
		}
		p.Lib.Record(dest, f.SHA256)
		paths = append(paths, dest)
	}
	got, found := p.Lib.Find(strings.TrimSuffix(filepath.ToSlash(modelRel(dir, paths[0])), ".gguf"))
	if !found {
		if got, found = p.Lib.Find(ref); !found {
			return Model{}, fmt.Errorf("copied %s to %s, but the library cannot read it", want.Name, paths[0])
		}
	}
	progress(hub.Progress{Status: "success", File: got.Name})
	return got, nil
}

// modelRel is the name below base of the model whose first file is p.
func modelRel(base, p string) string {
	r, err := filepath.Rel(base, p)
	if err != nil {
		return p
	}
	if name, _, _, split := hub.Shard(filepath.Base(r)); split {
		return filepath.Join(filepath.Dir(r), name)
	}
	return r
}
