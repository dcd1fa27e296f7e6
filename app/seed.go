package app

import (
	"context"
	"path/filepath"
	"slices"
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
	return h.Files()
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
