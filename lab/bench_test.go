package lab_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/bench/fig"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
	"github.com/potluck-gpu/potluck/lab"
)

// report prints a figure for `make bench`.
func report(t *testing.T, f fig.Figure) {
	fig.Print(os.Stdout, f)
	t.Logf("%s: %.3g %s (%s; %s)", f.Name, f.Value, f.Unit, f.Relation, f.Target)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// bigModel1G is a generated model of about 1.2 GB whose every weight
// matrix is above llama.cpp's RPC hash threshold.
var bigModel1G = ggufgen.TinyLlama{Vocab: 2048, Embd: 1792, Layers: 9, Heads: 14, KVHeads: 14, FF: 4096, Context: 512, Seed: 9}

// TestLabBenchModels measures, for `make bench` (POTLUCK_LAB_BENCH=1), over
// links capped with tc at 200 Mbit/s a machine:
//   - a pull from two peers against one;
//   - a split load of a 1.2 GB model onto two workers that hold the file,
//     against two that do not: bytes through the head's tunnels and time
//     from the request to serve it until it is ready.
func TestLabBenchModels(t *testing.T) {
	if os.Getenv("POTLUCK_LAB_BENCH") == "" {
		t.Skip("a benchmark: `make bench` runs it (POTLUCK_LAB_BENCH=1)")
	}
	const mbit = 200
	withFile, without := t.TempDir(), t.TempDir()
	os.Chmod(withFile, 0o755)
	pullModel := filepath.Join(withFile, "owner", "pull", "pull-F32.gguf")
	splitModel := filepath.Join(withFile, "owner", "big", "big-F32.gguf")
	for p, m := range map[string]ggufgen.TinyLlama{pullModel: bigF32, splitModel: bigModel1G} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := ggufgen.WriteFile(p, m); err != nil {
			t.Fatal(err)
		}
	}
	pullInfo, _ := os.Stat(pullModel)
	splitInfo, _ := os.Stat(splitModel)
	pullSum, splitSum := fileSHA(t, pullModel), fileSHA(t, splitModel)

	// 0 pulls and heads; 1 and 2 hold the files; 3 and 4 do not.
	nw := lab.New(t, 5, lab.Options{
		Env:  []string{"HF_ENDPOINT=http://127.0.0.1:9"},
		Hold: []int{3, 4},
		Args: func(i int) []string {
			switch i {
			case 0:
				// No draft: the library's two generated models share a
				// tokenizer, and the split of one would draft with the
				// other (see TestLabBenchDraft).
				return []string{"--name", "head", "--split", "all", "--draft", "none"}
			case 1, 2:
				return []string{"--name", fmt.Sprintf("holder%d", i), "--share", "worker", "--models-dir", withFile}
			}
			return []string{"--name", fmt.Sprintf("bare%d", i), "--share", "worker", "--models-dir", without}
		},
	})
	head := nw.Nodes[0]
	for _, n := range nw.Nodes[1:3] {
		n.RateLimit(mbit)
	}
	offered := func(sha string, want int) func() bool {
		return func() bool {
			var peers []struct {
				Online bool `json:"online"`
				Files  []struct {
					SHA256 string `json:"sha256"`
				} `json:"files"`
			}
			if head.GetJSON("/api/peers", &peers) != nil {
				return false
			}
			n := 0
			for _, p := range peers {
				for _, f := range p.Files {
					if p.Online && f.SHA256 == sha {
						n++
					}
				}
			}
			return n == want
		}
	}
	nw.Wait("both holders offering both files", 2*time.Minute, func() bool { return offered(pullSum, 2)() && offered(splitSum, 2)() })

	// Pulls: one peer, then two, twice over.
	dest := filepath.Join(head.DataDir, "models", "owner", "pull", "pull-F32.gguf")
	pull := func() float64 {
		os.Remove(dest)
		start := time.Now()
		if out, err := adminPost(head, "/api/pull", map[string]any{"model": "owner/pull/pull-F32.gguf", "stream": false}, 5*time.Minute); err != nil {
			t.Fatalf("pull: %v %s", err, out)
		}
		return time.Since(start).Seconds()
	}
	share := func(n *lab.Node, mode string) {
		if _, err := adminPost(n, "/api/share", map[string]any{"mode": mode}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	var one, two []float64
	for range 2 {
		share(nw.Nodes[2], "off")
		nw.Wait("one holder", time.Minute, offered(pullSum, 1))
		one = append(one, pull())
		share(nw.Nodes[2], "worker")
		nw.Wait("two holders", time.Minute, offered(pullSum, 2))
		two = append(two, pull())
	}
	speedup := median(one) / median(two)
	met := speedup >= 1.7
	report(t, fig.Figure{Section: "models", Name: "pull from 2 peers", Unit: "s", Value: median(two), Runs: two,
		Anchor: "from 1 peer", AnchorValue: median(one), AnchorRuns: one,
		Relation: fmt.Sprintf("%.2fx as fast", speedup), Target: ">= 1.7x as fast", Met: &met,
		Note: fmt.Sprintf("%d MB generated model, peers' uplinks capped at %d Mbit/s with tc tbf, 3 nodes in network namespaces; pull to the file renamed into the store, sha256 checked", pullInfo.Size()>>20, mbit)})

	// Split loads: two workers without the file, then two with it.
	tunnel := func() float64 {
		m, err := head.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		return lab.SumMetric(m, "potluck_tunnel_bytes_total")
	}
	serve := func(model string, workers []string) (bytes, seconds float64) {
		before, start := tunnel(), time.Now()
		if _, err := adminPost(head, "/api/serve", map[string]any{"model": model}, time.Minute); err != nil {
			t.Fatal(err)
		}
		nw.Wait("the split onto "+fmt.Sprint(workers), 10*time.Minute, func() bool { return planUses(head, workers, nil) })
		return tunnel() - before, time.Since(start).Seconds()
	}
	head.RateLimit(mbit) // the weights flow from the head
	for _, n := range nw.Nodes[1:3] {
		n.Kill()
	}
	for _, n := range nw.Nodes[3:5] {
		n.Start()
		n.RateLimit(mbit)
	}
	bare := []string{nw.Nodes[3].PeerID(), nw.Nodes[4].PeerID()}
	coldBytes, coldTime := serve(splitModel, bare)
	if _, err := adminPost(head, "/api/serve", map[string]any{"model": ""}, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, n := range nw.Nodes[3:5] {
		n.Kill()
	}
	for _, n := range nw.Nodes[1:3] {
		n.Restart()
	}
	holders := []string{nw.Nodes[1].PeerID(), nw.Nodes[2].PeerID()}
	nw.Wait("the holders offering the file again", 2*time.Minute, offered(splitSum, 2))
	warmBytes, warmTime := serve(splitModel, holders)

	bytesMet, timeMet := warmBytes <= coldBytes/20, warmTime <= 0.3*coldTime
	note := fmt.Sprintf("%d MB generated model (%d layers, every matrix over 10 MiB), head --split all onto 2 workers, every uplink capped at %d Mbit/s; time from POST /api/serve to the plan served, the workers' copy into their cache included",
		splitInfo.Size()>>20, bigModel1G.Layers, mbit)
	report(t, fig.Figure{Section: "models", Name: "split load onto 2 workers with the file, bytes", Unit: "MB", Value: warmBytes / 1e6,
		Anchor: "workers without it", AnchorValue: coldBytes / 1e6, Relation: fmt.Sprintf("%.1f%% of cold", 100*warmBytes/coldBytes),
		Target: "<= 5% of cold", Met: &bytesMet, Note: note})
	report(t, fig.Figure{Section: "models", Name: "split load onto 2 workers with the file, time", Unit: "s", Value: warmTime,
		Anchor: "workers without it", AnchorValue: coldTime, Relation: fmt.Sprintf("%.0f%% of cold", 100*warmTime/coldTime),
		Target: "<= 30% of cold", Met: &timeMet, Note: note})
}
