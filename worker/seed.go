package worker

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/nodestate"
)

// A split's weights need not cross the network when a worker has the model
// file: the head announces the sha256 of what it loads, a worker holding
// that file copies its large tensors into its RPC tensor cache and says
// so, and the head waits for that before it loads, so llama.cpp sends
// hashes instead of weights.

// Seeder fills the worker's tensor cache from the files the pool's heads
// load that this machine has, one file at a time.
type Seeder struct {
	// CacheBase is the worker's XDG_CACHE_HOME: the cache is below it.
	CacheBase string
	Log       *slog.Logger

	mu      sync.Mutex
	seeding bool
	seeded  map[string]bool // by sha256
}

// Seeded lists the sha256 of the files whose tensors the cache holds.
func (s *Seeder) Seeded() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.seeded))
	for sha := range s.seeded {
		out = append(out, sha)
	}
	slices.Sort(out)
	return out
}

// Next starts seeding the first file that an online head loads, lookup
// finds on this machine, and the cache does not hold yet; one at a time.
// done is told when a file is in the cache, for the node to say so and
// look for the next.
func (s *Seeder) Next(ctx context.Context, heads []nodestate.Peer, lookup func(sha string) (path string, ok bool), done func()) {
	s.mu.Lock()
	if s.seeding {
		s.mu.Unlock()
		return
	}
	var sha, path string
	for _, p := range heads {
		if !p.Online {
			continue
		}
		for _, h := range p.Head {
			if file, ok := lookup(h); ok && !s.seeded[h] {
				sha, path = h, file
				break
			}
		}
		if sha != "" {
			break
		}
	}
	if sha == "" {
		s.mu.Unlock()
		return
	}
	s.seeding = true
	s.mu.Unlock()
	go func() {
		start := time.Now()
		st, err := engine.SeedRPCCache(ctx, path, engine.RPCCacheDir(s.CacheBase))
		s.mu.Lock()
		s.seeding = false
		if err == nil {
			if s.seeded == nil {
				s.seeded = map[string]bool{}
			}
			s.seeded[sha] = true
		}
		s.mu.Unlock()
		log := s.Log
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("preparing the worker's copy of a model", "file", path, "err", err)
			}
			return
		}
		log.Info("worker cache ready for a model a head loads", "file", filepath.Base(path), "tensors", st.Tensors,
			"written_mb", st.Written>>20, "took", time.Since(start).Round(time.Millisecond))
		done()
	}()
}
