package app

import (
	"context"
	"path/filepath"
	"slices"

	"github.com/potluck-gpu/potluck/library"
	"github.com/potluck-gpu/potluck/nodestate"
)

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

// rpcCache is the shard worker's tensor cache (its XDG_CACHE_HOME), which
// the seeder fills.
func (n *Node) rpcCache() string { return filepath.Join(n.cfg.DataDir, "rpc-cache") }

// maybeSeed seeds the worker's cache with the next file that heads load
// and this machine has, while it shares as a worker.
func (n *Node) maybeSeed() {
	n.mu.Lock()
	worker, ctx := n.shareLocked() == nodestate.ShareWorker, n.runCtx
	n.mu.Unlock()
	if !worker || ctx == nil {
		return
	}
	idx := &fileIndex{lib: n.lib}
	n.seeder.Next(ctx, n.Peers(), idx.lookup, func() {
		n.publishInfo()
		n.maybeSeed()
	})
}
