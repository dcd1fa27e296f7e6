package engine_test

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
)

// countingProxy forwards 127.0.0.1:port to target and counts the bytes
// sent toward target.
func countingProxy(t *testing.T, target string) (string, *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { io.Copy(c, up); c.Close() }()
				io.Copy(counter{up, &sent}, c)
			})
		}
	})
	return ln.Addr().String(), &sent
}

// counter counts what is written through it as it goes.
type counter struct {
	w io.Writer
	n *atomic.Int64
}

func (c counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func cacheNames(t *testing.T, dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if _, ok := engine.ParseRPCCacheName(e.Name()); ok {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}

// A worker whose cache was seeded from the GGUF gets hashes, not weights:
// the seeded files are exactly those rpc-server writes itself after a
// cold load, and a load onto the seeded worker sends at most 5 % of the
// bytes of a cold one, with the same output.
func TestSeedRPCCache(t *testing.T) {
	rt := enginetest.Runtime(t)
	model := filepath.Join(t.TempDir(), "m.gguf")
	// Every weight matrix above the 10 MiB threshold (12 to 28 MiB of
	// F32), as in a large model; only the norms are smaller.
	if err := ggufgen.WriteFile(model, ggufgen.TinyLlama{Vocab: 2048, Embd: 1792, Layers: 1, Heads: 14, KVHeads: 14, FF: 4096, Context: 512, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	load := func(cacheBase string) (int64, string) {
		t.Helper()
		wport, err := engine.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		worker := enginetest.Worker(t, rt, engine.WorkerSpec{Port: wport, Threads: 1, CacheDir: cacheBase})
		addr, sent := countingProxy(t, worker)
		port, err := engine.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		base := enginetest.Server(t, rt, engine.ServerSpec{Model: model, Port: port, CtxSize: 512, Threads: 1,
			RPC: []string{addr}, GPULayers: -1, Devices: []string{"RPC0"}})
		text := enginetest.Complete(t, base, 8)
		return sent.Load(), text
	}

	coldBase := t.TempDir()
	cold, coldText := load(coldBase)
	written := cacheNames(t, engine.RPCCacheDir(coldBase))
	if len(written) == 0 {
		t.Fatalf("rpc-server cached nothing in %s after a cold load", engine.RPCCacheDir(coldBase))
	}

	seedBase := t.TempDir()
	st, err := engine.SeedRPCCache(context.Background(), model, engine.RPCCacheDir(seedBase))
	if err != nil {
		t.Fatal(err)
	}
	seeded := cacheNames(t, engine.RPCCacheDir(seedBase))
	if !slices.Equal(seeded, written) {
		t.Fatalf("seeded %v, rpc-server wrote %v", seeded, written)
	}
	if again, err := engine.SeedRPCCache(context.Background(), model, engine.RPCCacheDir(seedBase)); err != nil || again.Written != 0 || again.Skipped != st.Written {
		t.Errorf("seeding again: %+v, %v; want everything skipped", again, err)
	}

	warm, warmText := load(seedBase)
	t.Logf("cold load sent %d bytes, seeded %d (%.1f %%); %d tensors, %d MB seeded",
		cold, warm, 100*float64(warm)/float64(cold), st.Tensors, st.Written>>20)
	if warm > cold/20 {
		t.Errorf("a load onto the seeded worker sent %d bytes, over 5 %% of a cold load's %d", warm, cold)
	}
	if warmText != coldText {
		t.Errorf("seeded worker says %q, cold %q", warmText, coldText)
	}
}
