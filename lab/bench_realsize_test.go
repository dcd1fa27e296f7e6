package lab_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/bench/fig"
	"github.com/potluck-gpu/potluck/lab"
)

// TestLabBenchRealSize measures, for `make bench` (POTLUCK_LAB_BENCH=1), a
// 4 GB model on a home LAN: every link capped at 1 Gbit/s with tc.
//   - Tunnel throughput: the head copies the model from a peer; the
//     bytes through its tunnels per second, against the cap and against
//     one plain TCP connection over the same link.
//   - Split load: the head splits the model over two workers that do not
//     have it; the time from POST /api/serve until it serves, against the
//     bytes its tunnels carried divided by the cap.
//   - Sharded decode: tokens per second of that split through the mesh,
//     against the same llama-server command line over llama.cpp's RPC
//     straight across the LAN.
func TestLabBenchRealSize(t *testing.T) {
	if os.Getenv("POTLUCK_LAB_BENCH") == "" {
		t.Skip("a benchmark: `make bench` runs it (POTLUCK_LAB_BENCH=1)")
	}
	const mbit = 1000
	const capBits = mbit * 1e6
	dir, _, fi, sum := sharedModel(t, "big4g", llama4G)
	nw := lab.New(t, 4, lab.Options{
		Env: []string{"HF_ENDPOINT=http://127.0.0.1:9"},
		Args: func(i int) []string {
			switch i {
			case 0:
				return []string{"--name", "head", "--split", "all"}
			case 1:
				return []string{"--name", "holder", "--share", "worker", "--models-dir", dir}
			}
			return []string{"--name", fmt.Sprintf("w%d", i), "--share", "worker"}
		},
	})
	head, holder, w2, w3 := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2], nw.Nodes[3]
	for _, n := range nw.Nodes {
		n.RateLimit(mbit)
	}
	note := fmt.Sprintf("%d MB generated llama (%d layers), 4 nodes in network namespaces, every uplink capped at %d Mbit/s with tc tbf", fi.Size()>>20, llama4G.Layers, mbit)

	// One plain TCP connection over the capped link.
	var raw []float64
	for range 3 {
		bps, err := holder.RawTCP(head, 512<<20)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, bps/1e6)
	}

	// The copy: the head's tunnel bytes, sampled, between 10 % and 90 %
	// of the file.
	nw.Wait("the holder offering the file", 2*time.Minute, func() bool { return slices.Contains(holders(head, sum), "holder") })
	tunnel := func() float64 {
		m, err := head.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		return lab.SumMetric(m, "potluck_tunnel_bytes_total")
	}
	type sample struct {
		at    time.Time
		bytes float64
	}
	var (
		mu      sync.Mutex
		samples []sample
	)
	ctx, stopSampling := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			s := sample{time.Now(), tunnel()}
			mu.Lock()
			samples = append(samples, s)
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	})
	pullStart := time.Now()
	if out, err := adminPost(head, "/api/pull", map[string]any{"model": "owner/big4g/big4g-F32.gguf", "stream": false}, 10*time.Minute); err != nil {
		t.Fatalf("pull: %v %s", err, out)
	}
	pullTook := time.Since(pullStart)
	stopSampling()
	wg.Wait()
	base := samples[0].bytes
	at := func(frac float64) sample {
		for _, s := range samples {
			if s.bytes-base >= frac*float64(fi.Size()) {
				return s
			}
		}
		return samples[len(samples)-1]
	}
	lo, hi := at(0.1), at(0.9)
	tunnelMbit := (hi.bytes - lo.bytes) * 8 / hi.at.Sub(lo.at).Seconds() / 1e6
	met := tunnelMbit >= 0.95*mbit
	report(t, fig.Figure{Section: "real size", Name: "tunnel throughput at a 1 Gbit/s cap", Unit: "Mbit/s", Value: tunnelMbit,
		Anchor: "one plain TCP connection", AnchorValue: median(raw), AnchorRuns: raw,
		Relation: fmt.Sprintf("%.3fx the cap, %.3fx plain TCP", tunnelMbit/mbit, tunnelMbit/median(raw)), Target: ">= 0.95x the cap", Met: &met,
		Note: fmt.Sprintf("%s; the head copying the model from a peer (whole copy %s, sha256 checked), tunnel bytes from 10%% to 90%% of the file", note, pullTook.Round(time.Millisecond))})

	// The split load, onto two workers without the file.
	holder.Kill()
	ids := []string{w2.PeerID(), w3.PeerID()}
	before, start := tunnel(), time.Now()
	if _, err := adminPost(head, "/api/serve", map[string]any{"model": "owner/big4g/big4g-F32"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	nw.Wait("the split onto both workers", 15*time.Minute, func() bool { return planUses(head, ids, nil) })
	loadTook := time.Since(start)
	sent := tunnel() - before
	ideal := sent * 8 / capBits
	loadMet := loadTook.Seconds() <= 1.15*ideal
	report(t, fig.Figure{Section: "real size", Name: "split load onto 2 workers at a 1 Gbit/s cap", Unit: "s", Value: loadTook.Seconds(),
		Anchor: "bytes sent / cap", AnchorValue: ideal, Relation: fmt.Sprintf("%.2fx", loadTook.Seconds()/ideal), Target: "<= 1.15x", Met: &loadMet,
		Note: fmt.Sprintf("%s; from POST /api/serve until the plan serves; %.0f MB through the head's tunnels, which share its one capped uplink; the same load over plain RPC is the next figure", note, sent/1e6)})

	// Decode through the mesh, then the same llama-server over plain RPC.
	decode := func(complete func(context.Context) (lab.Completion, error)) []float64 {
		var tps []float64
		for range 3 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			c, err := complete(ctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			if c.TokensPerSecond <= 0 {
				t.Fatalf("no decode timings in the answer: %+v", c)
			}
			tps = append(tps, c.TokensPerSecond)
		}
		return tps
	}
	const tokens = 32
	mesh := decode(func(ctx context.Context) (lab.Completion, error) { return head.Complete(ctx, tokens) })
	server, err := head.Child("llama-server")
	if err != nil {
		t.Fatal(err)
	}
	workers := map[*lab.Node]lab.Child{}
	for _, w := range []*lab.Node{w2, w3} {
		if workers[w], err = w.Child("rpc-server", "ggml-rpc-server", "llama-rpc-server"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := adminPost(head, "/api/serve", map[string]any{"model": ""}, time.Minute); err != nil {
		t.Fatal(err)
	}
	nw.Wait("the head to stop its llama-server", time.Minute, func() bool { _, err := head.Child("llama-server"); return err != nil })
	var rpc []string
	for _, w := range []*lab.Node{w2, w3} {
		c := workers[w]
		// Without --cache: its tensors came from the load through the
		// mesh, and hashes instead of weights would flatter the baseline.
		args := slices.DeleteFunc(withFlag(withFlag(c.Args, "--host", w.IP), "--port", "50052"), func(a string) bool { return a == "--cache" })
		if _, _, err := w.Spawn(args, c.Env); err != nil {
			t.Fatal(err)
		}
		rpc = append(rpc, w.IP+":50052")
	}
	time.Sleep(2 * time.Second) // the rpc-servers listening
	const port = "18080"
	args := withFlag(withFlag(server.Args, "--rpc", strings.Join(rpc, ",")), "--port", port)
	_, logs, err := head.Spawn(args, server.Env)
	if err != nil {
		t.Fatal(err)
	}
	directStart := time.Now()
	nw.Wait("llama-server over plain RPC to load", 15*time.Minute, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := head.CompleteAt(ctx, "127.0.0.1:"+port, 1)
		return err == nil
	})
	directLoad := time.Since(directStart)
	report(t, fig.Figure{Section: "real size", Name: "split load over plain RPC at a 1 Gbit/s cap", Unit: "s", Value: directLoad.Seconds(),
		Anchor: "bytes sent / cap", AnchorValue: ideal, Relation: fmt.Sprintf("%.2fx; through the mesh %.2fx this", directLoad.Seconds()/ideal, loadTook.Seconds()/directLoad.Seconds()),
		Note: fmt.Sprintf("%s; the head's llama-server command line with --rpc to rpc-servers on the workers' LAN addresses (no tensor cache), from its start until it answers", note)})
	direct := decode(func(ctx context.Context) (lab.Completion, error) {
		c, err := head.CompleteAt(ctx, "127.0.0.1:"+port, tokens)
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, logs(40))
		}
		return c, err
	})
	decodeMet := median(mesh) >= 0.9*median(direct)
	report(t, fig.Figure{Section: "real size", Name: "sharded decode through the mesh", Unit: "tokens/s", Value: median(mesh), Runs: mesh,
		Anchor: "the same split over plain RPC", AnchorValue: median(direct), AnchorRuns: direct,
		Relation: fmt.Sprintf("%.2fx", median(mesh)/median(direct)), Target: ">= 0.9x", Met: &decodeMet,
		Note: fmt.Sprintf("%s; head and 2 workers, %d tokens greedy from the empty prompt, llama-server's own timings; the baseline runs the head's llama-server command line with --rpc to rpc-servers on the workers' LAN addresses", note, tokens)})
}

// withFlag returns args with flag's value set to value (appended when
// args lack the flag).
func withFlag(args []string, flag, value string) []string {
	out := slices.Clone(args)
	for i := range len(out) - 1 {
		if out[i] == flag {
			out[i+1] = value
			return out
		}
	}
	return append(out, flag, value)
}
