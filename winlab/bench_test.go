//go:build linux

package winlab

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/bench/fig"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/netmesh"
)

// bigLlama is a generated llama of about 1.3 GB (F32, 9 layers): a model
// of real size for a split whose worker runs under Wine.
var bigLlama = ggufgen.TinyLlama{Vocab: 2048, Embd: 1792, Layers: 9, Heads: 14, KVHeads: 14, FF: 4096, Context: 512, Seed: 9}

// TestWindowsBenchSplit measures, for `make bench` (POTLUCK_WINLAB_BENCH=1),
// a Linux head splitting a 1.3 GB model onto potluck.exe lending under
// Wine, against the same split onto a Linux worker, both on llama.cpp
// built from one source: the load from POST /api/serve until the plan
// serves with the worker, and the decode speed. Each split gives the
// greedy text of one process.
func TestWindowsBenchSplit(t *testing.T) {
	Need(t)
	if os.Getenv("POTLUCK_WINLAB_BENCH") == "" {
		t.Skip("a benchmark: `make bench` runs it (POTLUCK_WINLAB_BENCH=1)")
	}
	srv, b := windowsReleases(t)
	lb := runtimesBinaries(t, "linux")
	if _, err := srv.AddBuild(lb.Version, "linux", lb.Dir); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(t.TempDir(), "big-F32.gguf")
	if err := ggufgen.WriteFile(model, bigLlama); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(model)
	if err != nil {
		t.Fatal(err)
	}
	const n = 32
	single := singleText(t, lb, model)

	tok, err := netmesh.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	mesh := []string{"--token", tok, "--no-dht", "--no-mdns", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--releases", srv.URL, "--llama-version", b.Version}
	head := startLinux(t, append(mesh, "--name", "head", "--split", "all", "--llama-cache", t.TempDir())...)
	WaitFor(t, "the head's addresses", time.Minute, func() bool { return len(head.Status(t).P2PAddrs) > 0 })
	boot := head.Status(t).P2PAddrs[0]

	// measure serves the model on the head once the worker lends, and
	// returns the seconds until the plan serves with it and the decode
	// speed, then stops serving.
	measure := func(worker string) (load, tps float64) {
		WaitFor(t, worker+" lending, as the head sees it", 3*time.Minute, func() bool {
			p, ok := findPeer(peersOf(head.API), worker)
			return ok && p.Mode == "worker"
		})
		start := time.Now()
		if err := nodetest.PostJSON(head.API+"/api/serve", fmt.Sprintf(`{"model":%q}`, model), nil); err != nil {
			t.Fatal(err)
		}
		WaitFor(t, "the split onto "+worker, 15*time.Minute, func() bool {
			var d planDoc
			if nodetest.GetJSON(head.API+"/api/plan", &d) != nil {
				return false
			}
			for _, node := range d.Plan.Nodes {
				if node.Name == worker && node.Layers > 0 {
					st := head.Status(t)
					return st.Model != nil && st.Model.Ready
				}
			}
			return false
		})
		load = time.Since(start).Seconds()
		if _, _, _, err := decode(head.API, "big-F32", 4); err != nil {
			t.Fatal(err)
		}
		text, tokens, secs, err := decode(head.API, "big-F32", n)
		if err != nil {
			t.Fatal(err)
		}
		if text != single {
			t.Errorf("the split onto %s = %q, want %q (one process)", worker, text, single)
		}
		if err := nodetest.PostJSON(head.API+"/api/serve", `{"model":""}`, nil); err != nil {
			t.Fatal(err)
		}
		WaitFor(t, "the head to stop serving", time.Minute, func() bool { return head.Status(t).Model == nil })
		return load, float64(tokens) / secs
	}

	win := StartNode(t, t.TempDir(), append(mesh, "--name", "gamer", "--share", "worker", "--bootstrap", boot)...)
	winLoad, winTPS := measure("gamer")
	win.Interrupt(t)
	if !win.Wait(time.Minute) {
		t.Fatal("potluck.exe did not stop")
	}
	startLinux(t, append(mesh, "--name", "penguin", "--share", "worker", "--bootstrap", boot, "--llama-cache", t.TempDir())...)
	linLoad, linTPS := measure("penguin")

	note := fmt.Sprintf("a generated %.0f MB F32 llama of %d layers; head and worker on one machine over the mesh's loopback tunnel; llama.cpp %s built here for both systems", float64(info.Size())/1e6, bigLlama.Layers, b.Version)
	for _, f := range []fig.Figure{
		{Section: "windows", Name: "split load onto a worker under Wine", Unit: "s", Value: winLoad,
			Anchor: "the same onto a Linux worker", AnchorValue: linLoad, Relation: fmt.Sprintf("%.2fx", winLoad/linLoad),
			Note: note + "; from POST /api/serve until the plan serves with the worker"},
		{Section: "windows", Name: "split decode with a worker under Wine", Unit: "tok/s", Value: winTPS,
			Anchor: "the same with a Linux worker", AnchorValue: linTPS, Relation: fmt.Sprintf("%.2fx", winTPS/linTPS),
			Note: note + fmt.Sprintf("; %d tokens, greedy, after a warm-up", n)},
	} {
		fig.Print(os.Stdout, f)
		t.Logf("%s: %.3g %s against %.3g (%s)", f.Name, f.Value, f.Unit, f.AnchorValue, f.Relation)
	}
}

// decode asks api for a greedy completion of n tokens and returns the
// text, the tokens generated and the seconds the request took.
func decode(api, model string, n int) (string, int, float64, error) {
	body := fmt.Sprintf(`{"model":%q,"prompt":"","max_tokens":%d,"temperature":0,"seed":1}`, model, n)
	start := time.Now()
	resp, err := http.Post(api+"/v1/completions", "application/json", strings.NewReader(body))
	if err != nil {
		return "", 0, 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Choices []struct{ Text string } `json:"choices"`
		Usage   struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", 0, 0, fmt.Errorf("%s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Choices) == 0 {
		return "", 0, 0, fmt.Errorf("no completion: %v", err)
	}
	secs := time.Since(start).Seconds()
	if out.Usage.CompletionTokens == 0 {
		return "", 0, 0, fmt.Errorf("the completion counts no tokens")
	}
	return out.Choices[0].Text, out.Usage.CompletionTokens, secs, nil
}
