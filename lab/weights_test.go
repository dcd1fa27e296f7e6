package lab_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
	"github.com/potluck-gpu/potluck/lab"
)

// llama4G is a generated llama of about 4.1 GB (random weights: the test
// is about memory, time and bytes, not text).
var llama4G = ggufgen.TinyLlama{Vocab: 2048, Embd: 2048, Layers: 20, Heads: 16, KVHeads: 16, FF: 5632, Context: 512, Seed: 4}

// launch is what llama-server is started with under a plan.
func launch(d lab.PlanDoc) string {
	p := d.Plan
	return fmt.Sprint(p.Workers, p.ServerDevices, p.GPULayers, p.TensorSplit)
}

// A real-size model split over a head and two workers whose links are
// capped: the load takes longer than a fixed 2-minute readiness timeout
// would allow and finishes without a restart; then nothing moves while it
// serves a light load; and a worker killed after the load makes the head
// re-plan while requests wait or get a 503, never hang.
//
// `make soak` (POTLUCK_TEST_SOAK=10m) runs the steady part for that long,
// and first kills a worker in the middle of the load: the head re-plans
// without it, requests meanwhile wait or get a 503, and once the worker is
// back the split takes it again.
//
// It sits in the last file of the package so that it runs last: it leaves
// gigabytes for the kernel to write back, which would slow the timing of
// the scenarios after it.
func TestLabRealSize(t *testing.T) {
	t.Cleanup(func() { exec.Command("sync").Run() })
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	model := filepath.Join(dir, "llama-4g.gguf")
	genStart := time.Now()
	if err := ggufgen.WriteFile(model, llama4G); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(model)
	t.Logf("generated %d MB in %s", fi.Size()>>20, time.Since(genStart).Round(time.Second))

	const mbit = 150
	nw := lab.New(t, 3, lab.Options{
		Args: func(i int) []string {
			if i == 0 {
				return []string{"--name", "head", "--split", "all"}
			}
			return []string{"--name", []string{"", "w1", "w2"}[i], "--share", "worker"}
		},
	})
	head, w1, w2 := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	head.RateLimit(mbit) // the weights go from the head to the workers
	ids := []string{w1.PeerID(), w2.PeerID()}
	nw.Wait("the head seeing both workers", time.Minute, func() bool {
		on := head.OnlinePeers()
		return on[ids[0]] && on[ids[1]]
	})

	soak := os.Getenv("POTLUCK_TEST_SOAK") != ""
	start := time.Now()
	if _, err := adminPost(head, "/api/serve", map[string]any{"model": model}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if soak {
		killDuringLoad(t, nw, ids)
		start = time.Now()
	}
	var details []string
	nw.Wait("the 4 GB model split over both workers", 10*time.Minute, func() bool {
		if st, err := head.Status(); err == nil && st.Model != nil && st.Model.Detail != "" {
			if len(details) == 0 || details[len(details)-1] != st.Model.Detail {
				details = append(details, st.Model.Detail)
			}
		}
		return planUses(head, ids, nil)
	})
	loaded := time.Since(start)
	st, err := head.Status()
	if err != nil {
		t.Fatal(err)
	}
	replans := strings.Count(head.Logs(2000), "plan changed")
	if soak {
		replans = 0 // the kill re-planned on purpose
	}
	t.Logf("LAB real size: %d MB over links capped at %d Mbit/s loaded in %s; llama-server starts %d; re-plans %d",
		fi.Size()>>20, mbit, loaded.Round(time.Second), st.Model.State.Starts, replans)
	if st.Model.State.Starts != 1 || replans != 0 {
		t.Errorf("the load restarted llama-server: %d starts, %d re-plans\n%s", st.Model.State.Starts, replans, head.Logs(60))
	}
	if !strings.Contains(strings.Join(details, "\n"), "sent to the workers") {
		t.Errorf("no load progress in the status: %q", details)
	}
	if loaded < 2*time.Minute {
		t.Logf("the load took %s, under the old 2-minute readiness timeout: the cap did not slow it enough to prove that", loaded)
	}

	// Steady: a light load, and nothing moves.
	plan, _ := head.Plan()
	before := strings.Count(head.Logs(2000), "plan changed")
	steady := enginetest.SoakDuration(time.Minute)
	for end := time.Now().Add(steady); time.Now().Before(end); time.Sleep(5 * time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if _, err := head.Complete(ctx, 4); err != nil {
			t.Errorf("a request during the steady run: %v", err)
		}
		cancel()
		now, err := head.Status()
		if err != nil || now.Model == nil || now.Model.State.Starts != 1 {
			t.Fatalf("llama-server restarted during the steady run: %+v %v", now.Model, err)
		}
		// The launch settings stay; the predicted speed follows the
		// measured round trips and may drift.
		if p, err := head.Plan(); err != nil || launch(p) != launch(plan) {
			t.Fatalf("the plan moved during the steady run:\n%s\nto\n%s", plan.Plan.String(), p.Plan.String())
		}
	}
	if n := strings.Count(head.Logs(2000), "plan changed") - before; n != 0 {
		t.Errorf("%d re-plans during the steady run", n)
	}

	// A worker dies: requests wait for the re-plan or get a 503 with
	// Retry-After; none hangs.
	w2.Kill()
	outcomes := requestsMeanwhile(head, 6)
	t.Logf("LAB real size: requests while a worker was lost: %v", outcomes)
	if n := outcomes["200"] + outcomes["503 with Retry-After"]; n != 6 {
		t.Errorf("while re-planning: %v; want each request served or told to retry", outcomes)
	}
	nw.Wait("the head serving with the worker left", 10*time.Minute, func() bool { return planUses(head, ids[:1], ids[1:]) })
}

// killDuringLoad kills the second worker once the head is sending it
// weights, checks that requests meanwhile are served or told to retry,
// that the head serves without it, and takes it back once it restarts.
func killDuringLoad(t *testing.T, nw *lab.Lab, ids []string) {
	head, w2 := nw.Nodes[0], nw.Nodes[2]
	nw.Wait("the head sending weights to the workers", 5*time.Minute, func() bool {
		st, err := head.Status()
		return err == nil && st.Model != nil && strings.Contains(st.Model.Detail, "sent to the workers") &&
			!strings.Contains(st.Model.Detail, "loading: 0 ")
	})
	st, _ := head.Status()
	t.Logf("LAB real size: killing w2 at %q", st.Model.Detail)
	w2.Kill()
	outcomes := requestsMeanwhile(head, 4)
	t.Logf("LAB real size: requests while a worker was lost in the load: %v", outcomes)
	if n := outcomes["200"] + outcomes["503 with Retry-After"]; n != 4 {
		t.Errorf("after a worker died in the load: %v; want each request served or told to retry", outcomes)
	}
	took := nw.Wait("the head serving without the worker killed in the load", 15*time.Minute, func() bool {
		return planUses(head, ids[:1], ids[1:])
	})
	t.Logf("LAB real size: served without the lost worker %s after the kill", took.Round(time.Second))
	w2.Restart()
}

// requestsMeanwhile sends n completions, a second apart, and counts how
// each ended: 200, 503 with Retry-After, another status, or no answer
// within 4 minutes.
func requestsMeanwhile(head *lab.Node, n int) map[string]int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	for range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, head.URL("/v1/completions"),
				strings.NewReader(`{"prompt":"","max_tokens":4,"temperature":0}`))
			req.Header.Set("Content-Type", "application/json")
			resp, err := head.Client.Do(req)
			key := "hung or broken"
			if err == nil {
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusOK:
					key = "200"
				case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
					key = "503 with Retry-After"
				default:
					key = resp.Status
				}
			}
			mu.Lock()
			outcomes[key]++
			mu.Unlock()
		})
		time.Sleep(time.Second)
	}
	wg.Wait()
	return outcomes
}
