package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
	"github.com/potluck-gpu/potluck/hub/hubtest"
)

// Two sharing machines hold a model; a third, started to serve it by a
// reference it lacks, copies it from them over the mesh, never from the
// hub, and serves it.
func TestPeersSendAModel(t *testing.T) {
	m := enginetest.TestModel(t)
	data, err := os.ReadFile(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	h := hubtest.New(t) // holds nothing: a pull that reaches it fails
	env := append(modelsEnv(t, h, data), "POTLUCK_P2P_HEARTBEAT=1s")
	token := newToken(t)

	holder := func(name, boot string) *proc {
		dir := t.TempDir()
		p := filepath.Join(dir, "owner", "repo", "stories-Q8_0.gguf")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		args := meshArgs(token, "--name", name, "--share", "worker", "--models-dir", dir)
		if boot != "" {
			args = append(args, "--bootstrap", boot)
		}
		return startPotluckEnv(t, env, args...)
	}
	b := holder("bravo", "")
	boot := b.meshStatus(t).P2PAddrs[0]
	holder("charlie", boot)

	dataDir := t.TempDir()
	a := startPotluckEnv(t, env, append(meshArgs(token, "--name", "alpha", "--bootstrap", boot),
		"--data-dir", dataDir, "--model", "hf.co/owner/repo:Q8_0")...)
	st := a.WaitStatus(t, "the model copied from peers and ready", modelReady)
	if got := enginetest.Complete(t, a.API, 24); m.Stories && !strings.HasPrefix(got, " Once upon a time") {
		t.Errorf("completion %q", got)
	}
	mod, _ := st["model"].(map[string]any)
	if mod["id"] != "owner/repo/stories-Q8_0" {
		t.Errorf("serving %v", mod["id"])
	}
	copied := filepath.Join(dataDir, "models", "owner", "repo", "stories-Q8_0.gguf")
	got, err := os.ReadFile(copied)
	if err != nil || hubtest.Sum(got) != hubtest.Sum(data) {
		t.Fatalf("copied file: %v (sha256 right: %v)", err, err == nil && hubtest.Sum(got) == hubtest.Sum(data))
	}
	if n := h.Count("storage"); n != 0 {
		t.Errorf("the hub sent the file %d times; the peers had it", n)
	}
	if !strings.Contains(a.Logs.String(), "copying a model file from peers") {
		t.Errorf("no copy from peers in the log:\n%s", a.Logs.String())
	}
}

// tunnelBytes reads a node's potluck_tunnel_bytes_total.
func tunnelBytes(t *testing.T, p *proc) float64 {
	t.Helper()
	resp, err := http.Get(p.API + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "potluck_tunnel_bytes_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no potluck_tunnel_bytes_total in /metrics")
	return 0
}

// A split onto a worker that has the model file sends hashes, not
// weights: the worker copies the tensors into its cache from its own file
// first. The same split onto a worker without the file is the baseline.
func TestSplitOntoAWorkerWithTheFile(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "owner", "big", "big-F32.gguf")
	os.MkdirAll(filepath.Dir(model), 0o755)
	// Every matrix above llama.cpp's 10 MiB hash threshold.
	if err := ggufgen.WriteFile(model, ggufgen.TinyLlama{Vocab: 2048, Embd: 1792, Layers: 2, Heads: 14, KVHeads: 14, FF: 4096, Context: 512, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	token := newToken(t)
	env := []string{"POTLUCK_P2P_HEARTBEAT=1s"}
	head := startPotluckEnv(t, env, meshArgs(token, "--name", "head", "--model", model, "--split", "all")...)
	boot := head.meshStatus(t).P2PAddrs[0]
	ready := func(what string) {
		head.WaitStatus(t, what, func(st map[string]any) bool {
			m, _ := st["model"].(map[string]any)
			return m != nil && m["ready"] == true && m["nodes"] == float64(2)
		})
	}

	before := tunnelBytes(t, head)
	cold := startPotluckEnv(t, env, meshArgs(token, "--name", "cold", "--share", "worker", "--bootstrap", boot)...)
	ready("the split onto the worker without the file")
	want := enginetest.Complete(t, head.API, 16)
	coldBytes := tunnelBytes(t, head) - before
	t.Logf("plan:\n%s", head.plan(t).Plan.String())
	cold.stop(t)
	head.WaitStatus(t, "the head alone again", func(st map[string]any) bool {
		m, _ := st["model"].(map[string]any)
		return m != nil && m["ready"] == true && m["nodes"] == float64(1)
	})

	before = tunnelBytes(t, head)
	warm := startPotluckEnv(t, env, meshArgs(token, "--name", "warm", "--share", "worker", "--bootstrap", boot, "--models-dir", dir)...)
	ready("the split onto the worker with the file")
	warmBytes := tunnelBytes(t, head) - before
	t.Logf("tunnel bytes: cold %.0f, warm %.0f (%.1f %%)", coldBytes, warmBytes, 100*warmBytes/coldBytes)
	if warmBytes > coldBytes/20 {
		t.Errorf("the split onto a worker with the file carried %.0f bytes, over 5 %% of %.0f\n%s", warmBytes, coldBytes, warm.Logs.String())
	}
	if got := enginetest.Complete(t, head.API, 16); got != want {
		t.Errorf("seeded split says %q, cold one %q", got, want)
	}
	if !strings.Contains(warm.Logs.String(), "worker cache ready") {
		t.Errorf("the worker never prepared its copy:\n%s", warm.Logs.String())
	}
}
