package app

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
)

// A split's weights need not cross the network when a worker has the model
// file: the head announces the sha256 of what it loads, a worker holding
// that file copies its large tensors into its RPC tensor cache and says
// so, and the head waits for that before it loads, so llama.cpp sends
// hashes instead of weights.

// rpcCacheBase is the worker's XDG_CACHE_HOME; the cache is below it.
func (n *Node) rpcCacheBase() string { return filepath.Join(n.cfg.DataDir, "rpc-cache") }

// seededFiles lists the files whose tensors the worker's cache holds.
func (n *Node) seededFiles() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.seeded))
	for sha := range n.seeded {
		out = append(out, sha)
	}
	slices.Sort(out)
	return out
}

// headFiles lists the sha256 of the files of the model this node serves.
func (n *Node) headFiles() []string {
	h := n.modelHost()
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.shas)
}

// modelFiles returns the sha256 of every file of the model at path,
// computing those the library does not know yet.
func (n *Node) modelFiles(ctx context.Context, path string) ([]string, uint64) {
	models, _ := n.lib.List()
	i := slices.IndexFunc(models, func(m library.Model) bool { return m.Path == path })
	files := []library.File{{Path: path}}
	if i >= 0 {
		files = models[i].Files
	}
	var shas []string
	var size uint64
	for _, f := range files {
		sha := f.SHA256
		if sha == "" {
			var err error
			if sha, err = n.lib.Hash(ctx, f.Path); err != nil {
				n.log.Warn("model checksum", "file", f.Path, "err", err)
				return nil, 0
			}
		}
		shas = append(shas, sha)
		size += f.Size
	}
	return shas, size
}

// maybeSeed starts seeding the worker's cache with the files that heads
// load and this machine has, one at a time.
func (n *Node) maybeSeed() {
	n.mu.Lock()
	if n.shareLocked() != nodestate.ShareWorker || n.seeding || n.runCtx == nil {
		n.mu.Unlock()
		return
	}
	ctx := n.runCtx
	n.mu.Unlock()
	idx := &fileIndex{lib: n.lib}
	var sha, path string
	for _, p := range n.Peers() {
		if !p.Online {
			continue
		}
		for _, h := range p.Head {
			n.mu.Lock()
			done := n.seeded[h]
			n.mu.Unlock()
			if p, ok := idx.lookup(h); ok && !done {
				sha, path = h, p
				break
			}
		}
		if sha != "" {
			break
		}
	}
	if sha == "" {
		return
	}
	n.mu.Lock()
	n.seeding = true
	n.mu.Unlock()
	go func() {
		start := time.Now()
		st, err := engine.SeedRPCCache(ctx, path, engine.RPCCacheDir(n.rpcCacheBase()))
		n.mu.Lock()
		n.seeding = false
		if err == nil {
			n.seeded[sha] = true
		}
		n.mu.Unlock()
		if err != nil {
			if ctx.Err() == nil {
				n.log.Warn("preparing the worker's copy of a model", "file", path, "err", err)
			}
			return
		}
		n.log.Info("worker cache ready for a model a head loads", "file", filepath.Base(path), "tensors", st.Tensors,
			"written_mb", st.Written>>20, "took", time.Since(start).Round(time.Millisecond))
		n.publishInfo()
		n.maybeSeed()
	}()
}

// awaitSeeds holds the head's load until the planned workers that have
// the model file have it in their tensor cache, for as long as copying it
// could take.
func (h *modelHost) awaitSeeds(ctx context.Context, plan engine.Plan) {
	h.mu.Lock()
	shas, size := slices.Clone(h.shas), h.size
	h.mu.Unlock()
	if len(shas) == 0 || len(plan.Workers) == 0 {
		return
	}
	deadline := time.Now().Add(30*time.Second + time.Duration(size/(100<<20))*time.Second)
	for {
		var waiting []string
		peers := h.n.Peers()
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
			h.n.log.Warn("workers did not prepare their copy of the model in time; sending the weights", "workers", waiting)
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
