package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
)

const decodeTokens = 128

// decodeRate asks the llama-server at base for a greedy completion of
// decodeTokens tokens and returns llama.cpp's own decode rate (timings).
func decodeRate(base string) (float64, error) {
	body := fmt.Sprintf(`{"prompt":"Once upon a time","max_tokens":%d,"temperature":0,"ignore_eos":true}`, decodeTokens)
	resp, err := apiClient.Post(base+"/v1/completions", "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", base, resp.Status)
	}
	var out struct {
		Timings struct {
			PredictedN         int     `json:"predicted_n"`
			PredictedPerSecond float64 `json:"predicted_per_second"`
		} `json:"timings"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, err
	}
	if out.Timings.PredictedN < decodeTokens/2 {
		return 0, fmt.Errorf("%s decoded only %d tokens", base, out.Timings.PredictedN)
	}
	return out.Timings.PredictedPerSecond, nil
}

type planDoc struct {
	Plan engine.Plan `json:"plan"`
}

// benchShard compares decode speed of the model in one llama-server, split
// over two RPC workers reached directly, and split over two Potluck workers
// through the mesh (the head's llama-server with the same arguments).
func (b *bench) benchShard(ctx context.Context) {
	const sec = "shard"
	fail := func(err error) { b.report.fail(sec, "sharded decode", err) }
	two, err := b.startSplit("head", 2)
	if err != nil {
		fail(err)
		return
	}
	plan, headArgs, meshURL := two.plan, two.args, two.url

	// The same model on a head alone and on a head with one worker, for
	// the plans' predicted decode rates (the head above is the third).
	predictions := []struct {
		name, setup, node string
		workers           int
		s                 *split
	}{{"alone", "one node", "head-alone", 0, nil}, {"1 worker", "head + 1 worker", "head-1w", 1, nil}, {"mesh", "head + 2 workers", "head", 2, two}}
	for i := range predictions[:2] {
		p := &predictions[i]
		if p.s, err = b.startSplit(p.node, p.workers); err != nil {
			b.report.fail(sec, "predicted vs measured decode, "+p.setup, err)
		}
	}

	// The same split with the workers reached directly.
	var direct []string
	for i := range 2 {
		addr, err := b.rpcWorker(fmt.Sprintf("rpc-server %d", i))
		if err != nil {
			fail(err)
			return
		}
		direct = append(direct, addr)
	}
	port, err := engine.FreePort()
	if err != nil {
		fail(err)
		return
	}
	args := withArg(withArg(headArgs, "--rpc", strings.Join(direct, ",")), "--port", strconv.Itoa(port))
	if _, _, err := b.llama("llama-server (direct RPC)", serverSpecArgs(b.rt, port, args), 60*time.Second); err != nil {
		fail(err)
		return
	}
	directURL := fmt.Sprintf("http://127.0.0.1:%d", port)

	// One process, no RPC.
	port, err = engine.FreePort()
	if err != nil {
		fail(err)
		return
	}
	single := b.rt.ServerSupervisorSpec(engine.ServerSpec{Model: b.model, Alias: b.alias, Port: port, CtxSize: 512, Threads: 1})
	if _, _, err := b.llama("llama-server (single)", single, 60*time.Second); err != nil {
		fail(err)
		return
	}
	singleURL := fmt.Sprintf("http://127.0.0.1:%d", port)

	// The same split through netmesh tunnels run inside this process, to
	// tell the tunnel's cost from the cost of two more processes in the path.
	// An rpc-server serves one client at a time: these are two more.
	var tunnelsURL string
	if pair, err := b.newMeshPair(); err == nil {
		var tuns []string
		for i := range 2 {
			port, err := engine.FreePort()
			if err != nil {
				break
			}
			spec := b.rt.WorkerSupervisorSpec(engine.WorkerSpec{Port: port, Threads: 1})
			if _, _, err := b.llama(fmt.Sprintf("rpc-server %d (tunnelled)", i), spec, 30*time.Second); err != nil {
				break
			}
			t, err := b.tunnel(pair, fmt.Sprintf("rpc-%d", i), "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				break
			}
			tuns = append(tuns, t)
		}
		if len(tuns) == 2 {
			if port, err := engine.FreePort(); err == nil {
				args := withArg(withArg(headArgs, "--rpc", strings.Join(tuns, ",")), "--port", strconv.Itoa(port))
				if _, _, err := b.llama("llama-server (in-process tunnels)", serverSpecArgs(b.rt, port, args), 60*time.Second); err == nil {
					tunnelsURL = fmt.Sprintf("http://127.0.0.1:%d", port)
				} else {
					b.report.fail(sec, "decode via in-process tunnels", err)
				}
			}
		}
	}

	type target struct{ name, url string }
	urls := []target{{"single", singleURL}, {"direct", directURL}, {"mesh", meshURL}}
	if tunnelsURL != "" {
		urls = append(urls, target{"tunnels", tunnelsURL})
	}
	for _, p := range predictions[:2] {
		if p.s != nil {
			urls = append(urls, target{p.name, p.s.url})
		}
	}
	rates := map[string][]float64{}
	for _, u := range urls { // warm-up
		if _, err := decodeRate(u.url); err != nil {
			fail(err)
			return
		}
	}
	sampled := map[string]*split{}
	for _, p := range predictions {
		if p.s != nil {
			sampled[p.name] = p.s
		}
	}
	for range b.runs {
		for _, u := range urls {
			if ctx.Err() != nil {
				return
			}
			if s := sampled[u.name]; s != nil && s.err == nil {
				s.err = s.sample()
			}
			r, err := decodeRate(u.url)
			if err != nil {
				fail(err)
				return
			}
			rates[u.name] = append(rates[u.name], r)
		}
	}
	m, d, s := median(rates["mesh"]), median(rates["direct"]), median(rates["single"])
	b.report.add(Figure{Section: sec, Name: "decode, 2 workers through the mesh", Unit: "tok/s", Value: m, Runs: round(rates["mesh"], 0),
		Anchor: "2 workers direct RPC", AnchorValue: d, AnchorRuns: round(rates["direct"], 0),
		Relation: fmt.Sprintf("%.2fx direct", m/d), Target: ">= 0.8x direct", Met: met(m >= 0.8*d),
		Note: fmt.Sprintf("llama.cpp's own decode rate (timings.predicted_per_second) for %d greedy tokens; head `--split all` + 2 `--share worker` processes; direct = the head's llama-server arguments with --rpc pointed at 2 plain rpc-servers; plan tensor split %v",
			decodeTokens, plan.TensorSplit)})
	if t := rates["tunnels"]; len(t) > 0 {
		b.report.add(Figure{Section: sec, Name: "decode, 2 workers via in-process tunnels", Unit: "tok/s", Value: median(t), Runs: round(t, 0),
			Anchor: "2 workers direct RPC", AnchorValue: d, Relation: fmt.Sprintf("%.2fx direct", median(t)/d),
			Note: "diagnostic: the direct workers reached through two netmesh nodes inside the benchmark process (same tunnel code, no potluck processes in the path)"})
	}
	b.report.add(Figure{Section: sec, Name: "decode, single process", Unit: "tok/s", Value: s, Runs: round(rates["single"], 0),
		Anchor: "2 workers direct RPC", AnchorValue: d,
		Relation: fmt.Sprintf("direct RPC is %.2fx single; mesh %.2fx single", d/s, m/s)})
	for _, p := range predictions {
		switch {
		case p.s == nil:
		case p.s.err != nil:
			b.report.fail(sec, "predicted vs measured decode, "+p.setup, p.s.err)
		default:
			b.report.add(b.predictionFigure(sec, p.setup, p.s, rates[p.name]))
		}
	}
	b.benchShardDraft(ctx, sec)
}

// benchLoad times llama-server loading a model onto one RPC worker that
// keeps a tensor cache (the worker Potluck runs: --cache, XDG_CACHE_HOME),
// first with an empty cache and then again. llama.cpp sends a hash instead of
// the data only for tensors over 10 MiB, so the test model shows no effect;
// a generated model with larger tensors shows it.
func (b *bench) benchLoad(ctx context.Context) {
	const sec = "load"
	big := filepath.Join(b.tmp, "big-llama.gguf")
	bigModel := ggufgen.TinyLlama{Vocab: 4096, Embd: 1024, Layers: 2, Heads: 16, KVHeads: 4, FF: 4096, Context: 512, Seed: 7}
	genStart := time.Now()
	bigErr := ggufgen.WriteFile(big, bigModel)
	genTime := time.Since(genStart)
	pair, pairErr := b.newMeshPair()
	for _, m := range []struct {
		name, path string
		pairs      int
		mesh       bool
		err        error
	}{
		{filepath.Base(b.model) + ", worker through the mesh", b.model, b.runs, true, pairErr},
		{"generated " + sizeMB(big) + " model, worker through the mesh", big, max(2, b.runs/2), true, errors.Join(bigErr, pairErr)},
		{"generated " + sizeMB(big) + " model, worker direct", big, max(2, b.runs/2), false, bigErr},
	} {
		name := "model load, 2nd with cache, " + m.name
		if m.err != nil {
			b.report.fail(sec, name, m.err)
			continue
		}
		var first, second, cached []float64
		for range m.pairs {
			if ctx.Err() != nil {
				return
			}
			via := pair
			if !m.mesh {
				via = nil
			}
			t1, t2, cache, err := b.loadPair(m.path, via)
			if err != nil {
				b.report.fail(sec, name, err)
				break
			}
			first, second, cached = append(first, t1), append(second, t2), append(cached, cache)
		}
		if len(first) == 0 {
			continue
		}
		f, s := median(first), median(second)
		note := fmt.Sprintf("llama-server start to /health 200 (polled every 5 ms), all layers on one rpc-server with --cache, 1 thread; the cache held %.0f MB after the first load",
			median(cached))
		if m.mesh {
			note += "; llama-server reaches the worker through a netmesh tunnel (two nodes in the benchmark process)"
		}
		if m.path == big && m.mesh {
			note += fmt.Sprintf("; model generated with ggufgen (%+v) in %.1fs", bigModel, genTime.Seconds())
		}
		fig := Figure{Section: sec, Name: name, Unit: "s", Value: s, Runs: round(second, 3),
			Anchor: "1st load", AnchorValue: f, AnchorRuns: round(first, 3),
			Relation: fmt.Sprintf("%.0f%% of 1st", 100*s/f), Note: note}
		if m.mesh {
			fig.Target, fig.Met = "<= 20% of 1st", met(s <= 0.2*f)
		}
		b.report.add(fig)
	}
}

// loadPair loads model twice onto a fresh worker with an empty cache and
// returns both load times (s) and the cache size after the first (MB).
// With a mesh pair, llama-server reaches the worker through a tunnel.
func (b *bench) loadPair(model string, mesh *meshPair) (first, second, cacheMB float64, err error) {
	cache := filepath.Join(b.tmp, fmt.Sprintf("rpc-cache-%d", time.Now().UnixNano()))
	wport, err := engine.FreePort()
	if err != nil {
		return 0, 0, 0, err
	}
	w, _, err := b.llama("rpc-server (cache)", b.rt.WorkerSupervisorSpec(engine.WorkerSpec{Port: wport, Threads: 1, CacheDir: cache}), 30*time.Second)
	if err != nil {
		return 0, 0, 0, err
	}
	defer w.stop(syscall.SIGTERM, 10*time.Second)
	rpc := fmt.Sprintf("127.0.0.1:%d", wport)
	if mesh != nil {
		if rpc, err = b.tunnel(mesh, fmt.Sprintf("rpc-%d", wport), rpc); err != nil {
			return 0, 0, 0, err
		}
	}
	var times [2]float64
	for i := range times {
		port, err := engine.FreePort()
		if err != nil {
			return 0, 0, 0, err
		}
		spec := b.rt.ServerSupervisorSpec(engine.ServerSpec{Model: model, Port: port, CtxSize: 512, Threads: 1,
			RPC: []string{rpc}, GPULayers: -1})
		s, d, err := b.llama("llama-server (load)", spec, 120*time.Second)
		if err != nil {
			return 0, 0, 0, err
		}
		times[i] = d.Seconds()
		s.stop(syscall.SIGTERM, 10*time.Second)
		if i == 0 {
			cacheMB = float64(dirSize(cache)) / 1e6
		}
	}
	return times[0], times[1], cacheMB, nil
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func sizeMB(path string) string {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return "?"
	}
	return fmt.Sprintf("%.0f MB", float64(st.Size)/1e6)
}
