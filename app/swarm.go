package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/hub"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/swarm"
)

// serviceModels is the mesh service that copies model files to peers.
const serviceModels = "models"

// maxOffered bounds the files a node announces.
const maxOffered = 64

// offeredFiles lists the files of this machine's models whose sha256 is
// known: what peers may copy while this node shares.
func (n *Node) offeredFiles() []nodestate.OfferedFile {
	models, _ := n.lib.List()
	var out []nodestate.OfferedFile
	for _, m := range models {
		if !m.Hashed() {
			continue
		}
		for _, f := range m.Files {
			out = append(out, nodestate.OfferedFile{Model: m.Name, File: filepath.Base(f.Path), SHA256: f.SHA256, Size: f.Size})
		}
		if len(out) >= maxOffered {
			break
		}
	}
	return out
}

// fileIndex finds local files by sha256 for the swarm server, listing the
// library again when a file is not known yet.
type fileIndex struct {
	lib *library.Library

	mu     sync.Mutex
	byHash map[string]string
	listed time.Time
}

func (x *fileIndex) lookup(sha string) (string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if p, ok := x.byHash[sha]; ok {
		return p, true
	}
	if time.Since(x.listed) < 2*time.Second {
		return "", false
	}
	x.listed = time.Now()
	models, _ := x.lib.List()
	x.byHash = map[string]string{}
	for _, m := range models {
		for _, f := range m.Files {
			if f.SHA256 != "" {
				x.byHash[f.SHA256] = f.Path
			}
		}
	}
	p, ok := x.byHash[sha]
	return p, ok
}

// runSwarm serves this machine's model files on loopback, for the mesh
// service that peers reach while this node shares.
func (n *Node) runSwarm(ctx context.Context) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	idx := &fileIndex{lib: n.lib}
	srv := &http.Server{
		Handler:           swarm.NewServer(idx.lookup, filepath.Join(n.cfg.DataDir, "manifests"), func(b int64) { n.swarmSent.Add(uint64(b)) }),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
	}
	n.mu.Lock()
	n.swarmAddr = ln.Addr().String()
	n.mu.Unlock()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// peerFiles are the files online peers offer, as a list of models that
// library.Match can search, and who has each file.
func (n *Node) peerFiles() ([]library.Model, map[string][]nodestate.Peer) {
	var models []library.Model
	holders := map[string][]nodestate.Peer{}
	idx := map[string]int{}
	for _, p := range n.Peers() {
		if !p.Online {
			continue
		}
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
				models = append(models, library.Model{Name: f.Model, Source: "peer " + p.Name})
			}
			m := &models[i]
			m.Files = append(m.Files, library.File{Path: f.File, Size: f.Size, SHA256: f.SHA256})
			m.Size += f.Size
		}
	}
	for i := range models {
		m := &models[i]
		slices.SortFunc(m.Files, func(a, b library.File) int { return strings.Compare(a.Path, b.Path) })
		m.Path = m.Files[0].Path
		if len(m.Files) == 1 {
			m.SHA256 = m.Files[0].SHA256
		}
	}
	return models, holders
}

// pullFromPeers copies the model ref names from the peers that have it,
// from all of them at once. ok is false when no peer has it.
func (n *Node) pullFromPeers(ctx context.Context, ref string, progress func(hub.Progress)) (m library.Model, ok bool, err error) {
	s := n.currentMesh()
	if s == nil {
		return library.Model{}, false, nil
	}
	models, holders := n.peerFiles()
	want, ok := library.Match(models, ref)
	if !ok {
		return library.Model{}, false, nil
	}
	// Where it goes: the same name in this store, ':' made a path.
	dir := library.StoreDir(n.cfg.DataDir)
	rel := strings.NewReplacer(":", "-", "\\", "-").Replace(want.Name)
	var paths []string
	for _, f := range want.Files {
		dest := filepath.Join(dir, filepath.FromSlash(rel)+".gguf")
		if len(want.Files) > 1 {
			dest = filepath.Join(dir, filepath.FromSlash(path.Dir(rel)), f.Path)
		}
		if !filepath.IsLocal(strings.TrimPrefix(dest, dir+string(filepath.Separator))) || filepath.Base(f.Path) != f.Path {
			return library.Model{}, true, fmt.Errorf("a peer names its model %q, which is no plain path", want.Name)
		}
		var sources []swarm.Source
		for _, p := range holders[f.SHA256] {
			id := p.ID
			sources = append(sources, swarm.Source{Name: p.Name, Base: func(ctx context.Context) (string, error) {
				addr, err := s.tunnel(ctx, id, serviceModels)
				return "http://" + addr, err
			}})
		}
		status := "pulling " + f.SHA256[:12]
		n.log.Info("copying a model file from peers", "model", want.Name, "file", f.Path, "peers", len(sources))
		err := swarm.Fetch(ctx, n.swarmClient, sources, f.SHA256, int64(f.Size), dest, func(sp swarm.Progress) {
			if sp.Dropped != "" {
				n.log.Warn("peer dropped from a copy", "why", sp.Dropped)
			}
			progress(hub.Progress{Status: status, Digest: "sha256:" + f.SHA256, Total: sp.Total, Completed: sp.Completed,
				File: want.Name, From: strings.Join(sp.From, ", ")})
		})
		if err != nil {
			return library.Model{}, true, err
		}
		n.lib.Record(dest, f.SHA256)
		paths = append(paths, dest)
	}
	got, found := n.lib.Find(strings.TrimSuffix(filepath.ToSlash(mustRel(dir, paths[0])), ".gguf"))
	if !found {
		if got, found = n.lib.Find(ref); !found {
			return library.Model{}, true, fmt.Errorf("copied %s to %s, but the library cannot read it", want.Name, paths[0])
		}
	}
	return got, true, nil
}

func mustRel(base, p string) string {
	r, err := filepath.Rel(base, p)
	if err != nil {
		return p
	}
	if _, _, _, split := hub.Shard(filepath.Base(r)); split {
		name, _, _, _ := hub.Shard(filepath.Base(r))
		return filepath.Join(filepath.Dir(r), name)
	}
	return r
}

// fileInfo is what a node says about model files in its node info: those
// it lets peers copy, those it loads as the head of a split, and those
// its RPC worker's tensor cache holds.
type fileInfo struct {
	Offer  []nodestate.OfferedFile `json:"offer,omitempty"`
	Head   []string                `json:"head,omitempty"`   // sha256 of the model files it serves
	Seeded []string                `json:"seeded,omitempty"` // sha256 of the files its worker cache holds
}

// decodeFiles reads a peer's fileInfo from its node info.
func decodeFiles(raw json.RawMessage) fileInfo {
	var fi fileInfo
	if len(raw) == 0 || json.Unmarshal(raw, &fi) != nil || len(fi.Offer) > maxOffered || len(fi.Head) > 16 || len(fi.Seeded) > maxOffered {
		return fileInfo{}
	}
	return fi
}
