package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/hub/hubtest"
	"github.com/potluck-gpu/potluck/internal/nodetest"
)

// modelsEnv is an environment with its own home, an Ollama store holding
// the test model, and the fake hub as HF_ENDPOINT.
func modelsEnv(t *testing.T, h *hubtest.Hub, data []byte) []string {
	home := t.TempDir()
	ollama := filepath.Join(home, ".ollama", "models")
	sum := hubtest.Sum(data)
	blob := filepath.Join(ollama, "blobs", "sha256-"+sum)
	man := filepath.Join(ollama, "manifests", "registry.ollama.ai", "library", "stories", "260k")
	for p, d := range map[string][]byte{
		blob: data,
		man:  fmt.Appendf(nil, `{"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:%s"}]}`, sum),
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, d, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cache, err := os.UserCacheDir() // where the provisioned llama.cpp is
	if err != nil {
		t.Fatal(err)
	}
	return []string{"HOME=" + home, "XDG_CACHE_HOME=" + cache, "HF_ENDPOINT=" + h.URL, "OLLAMA_MODELS=", "HF_HUB_CACHE=", "HF_HOME=", "LLAMA_CACHE=", "POTLUCK_MODELS_DIRS="}
}

func runEnv(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(nodetest.Binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// `potluck models` lists what other tools hold; `potluck pull` with no
// node fetches into the store with progress and the hub's checksum, and
// bad references say what is wrong.
func TestModelsAndPullCommands(t *testing.T) {
	m := enginetest.TestModel(t)
	h := hubtest.New(t)
	data := h.AddFile(t, "owner/repo", "stories-Q4_K_M.gguf", m.Path)
	h.Add("owner/repo", "README.md", []byte("# stories"))
	env := modelsEnv(t, h, data)
	dataDir := t.TempDir()
	closed, _ := engine.FreePort() // no node there

	out, errOut, err := runEnv(t, env, "models", "--data-dir", dataDir)
	if err != nil || !strings.Contains(out, "stories:260k") || !strings.Contains(out, "ollama") || !strings.Contains(out, "llama") {
		t.Fatalf("models: %v\n%s%s", err, out, errOut)
	}

	out, errOut, err = runEnv(t, env, "pull", "--data-dir", dataDir, "--api", fmt.Sprintf("127.0.0.1:%d", closed), "hf.co/owner/repo:q4_k_m")
	if err != nil || !strings.Contains(out, "owner/repo/stories-Q4_K_M is ready") {
		t.Fatalf("pull: %v\n%s%s", err, out, errOut)
	}
	if !strings.Contains(errOut, "100%") || !strings.Contains(errOut, "verifying sha256 digest") {
		t.Errorf("pull showed no progress:\n%s", errOut)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "models", "owner", "repo", "stories-Q4_K_M.gguf")); err != nil {
		t.Fatalf("pulled file: %v", err)
	}

	// The pulled file's checksum is the hub's, known without hashing.
	out, _, err = runEnv(t, env, "models", "--data-dir", dataDir, "--json")
	var list struct {
		Models []struct{ Name, Source, SHA256 string }
	}
	if err != nil || json.Unmarshal([]byte(out), &list) != nil {
		t.Fatalf("models --json: %v\n%s", err, out)
	}
	found := false
	for _, lm := range list.Models {
		if lm.Name == "owner/repo/stories-Q4_K_M" {
			found = lm.Source == "potluck" && lm.SHA256 == hubtest.Sum(data)
		}
	}
	if !found {
		t.Errorf("models --json: %s", out)
	}

	// Pulling it again, or by its file, is no network call.
	before := h.Count("api") + h.Count("resolve") + h.Count("storage")
	for _, ref := range []string{"owner/repo:Q4_K_M", "owner/repo/stories-Q4_K_M.gguf"} {
		if out, errOut, err := runEnv(t, env, "pull", "--data-dir", dataDir, "--api", fmt.Sprintf("127.0.0.1:%d", closed), ref); err != nil {
			t.Errorf("pull %s again: %v\n%s%s", ref, err, out, errOut)
		}
	}
	if after := h.Count("api") + h.Count("resolve") + h.Count("storage"); after != before {
		t.Errorf("pulling a model already here made %d requests", after-before)
	}

	for ref, want := range map[string][]string{
		"owner/nope:Q4_K_M":      {"owner/nope", "404"},
		"owner/repo/other.gguf":  {"owner/repo/other.gguf", "404"},
		"owner/repo:Q8_0":        {"owner/repo", "Q8_0", "Q4_K_M"},
		"just-a-name-not-a-file": {"not a GGUF file", "potluck models"},
	} {
		out, errOut, err := runEnv(t, env, "pull", "--data-dir", dataDir, "--api", fmt.Sprintf("127.0.0.1:%d", closed), ref)
		if err == nil {
			t.Errorf("pull %s succeeded:\n%s", ref, out)
		}
		for _, w := range want {
			if !strings.Contains(errOut, w) {
				t.Errorf("pull %s: %q does not say %q", ref, errOut, w)
			}
		}
	}
	if _, errOut, err := runEnv(t, env, "run", "--data-dir", dataDir, "--model", "no-such-model"); err == nil || !strings.Contains(errOut, "potluck models") {
		t.Errorf("run --model no-such-model: %v\n%s", err, errOut)
	}
}

// A node started with a reference it lacks pulls it and serves it under
// that model's library name; /api/pull streams Ollama's progress lines; a
// restart with the hub gone serves from the library.
func TestRunPullsAndServesAModelByName(t *testing.T) {
	m := enginetest.TestModel(t)
	h := hubtest.New(t)
	data := h.AddFile(t, "owner/repo", "stories-Q8_0.gguf", m.Path)
	h.AddFile(t, "owner/other", "other-F32.gguf", m.Path)
	env := modelsEnv(t, h, data)
	dataDir := t.TempDir()

	p := startPotluckEnv(t, env, "--data-dir", dataDir, "--model", "hf.co/owner/repo:Q8_0")
	p.WaitStatus(t, "the pulled model ready", modelReady)
	want := enginetest.Complete(t, p.API, 24)
	// Served under its library name; the other models of the library
	// (Ollama's, here) are listed as on disk.
	var models struct {
		Data []modelDoc `json:"data"`
	}
	var loaded []string
	err := nodetest.GetJSON(p.API+"/v1/models", &models)
	for _, m := range models.Data {
		if m.Potluck.Availability == "loaded" {
			loaded = append(loaded, m.ID)
		}
	}
	if err != nil || len(loaded) != 1 || loaded[0] != "owner/repo/stories-Q8_0" {
		t.Errorf("/v1/models: %+v, %v; want the library name loaded", models, err)
	}
	if m.Stories && !strings.HasPrefix(want, " Once upon a time") {
		t.Errorf("completion %q", want)
	}

	// POST /api/pull streams NDJSON in Ollama's shape.
	req, _ := http.NewRequest(http.MethodPost, p.API+"/api/pull", strings.NewReader(`{"model":"owner/other/other-F32.gguf"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/x-ndjson" {
		t.Fatalf("/api/pull: %s, %s", resp.Status, ct)
	}
	var lines []map[string]any
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("not JSON: %q", sc.Text())
		}
		lines = append(lines, l)
	}
	sawBytes := false
	for _, l := range lines {
		if l["digest"] == "sha256:"+hubtest.Sum(data) && l["total"] == float64(len(data)) && l["completed"] == float64(len(data)) {
			sawBytes = true
		}
	}
	if len(lines) < 3 || lines[0]["status"] != "pulling manifest" || lines[len(lines)-1]["status"] != "success" || !sawBytes {
		t.Errorf("/api/pull lines: %v", lines)
	}

	// A pull that fails before it starts keeps its HTTP status.
	req, _ = http.NewRequest(http.MethodPost, p.API+"/api/pull", strings.NewReader(`{"model":"owner/missing:Q4_K_M"}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("pull of a missing repository: %v %v, want 404", resp.Status, err)
	} else {
		resp.Body.Close()
	}

	// `potluck pull` goes through the running node, into its store.
	api := strings.TrimPrefix(p.API, "http://")
	h.Add("owner/third", "third-Q4_0.gguf", data)
	out, errOut, err := runEnv(t, env, "pull", "--api", api, "--data-dir", t.TempDir(), "owner/third:Q4_0")
	if err != nil || !strings.Contains(errOut, "through the node") || !strings.Contains(out, filepath.Join(dataDir, "models", "owner", "third")) {
		t.Errorf("pull through the node: %v\n%s%s", err, out, errOut)
	}

	// POST /api/serve switches models at run time, and the choice is kept.
	req, _ = http.NewRequest(http.MethodPost, p.API+"/api/serve", strings.NewReader(`{"model":"owner/other/other-F32"}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("serve: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	p.WaitStatus(t, "the other model ready", func(st map[string]any) bool {
		m, _ := st["model"].(map[string]any)
		return m != nil && m["id"] == "owner/other/other-F32" && m["ready"] == true
	})
	if got := enginetest.Complete(t, p.API, 24); got != want {
		t.Errorf("the other model (same weights) says %q, want %q", got, want)
	}
	req, _ = http.NewRequest(http.MethodPost, p.API+"/api/serve", strings.NewReader(`{"model":"owner/nothing/here-Q4_K_M.gguf-not"}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Errorf("serving a model that is nowhere: %v %v, want 400", resp.Status, err)
	}
	p.stop(t)
	p3 := startPotluckEnv(t, env, "--data-dir", dataDir)
	p3.WaitStatus(t, "the model chosen last, after a restart", func(st map[string]any) bool {
		m, _ := st["model"].(map[string]any)
		return m != nil && m["id"] == "owner/other/other-F32" && m["ready"] == true
	})
	p3.stop(t)

	// Restarted with the hub unreachable, the node serves from the library.
	h.Gate("owner/repo", "nobody-has-this")
	before := h.Count("api") + h.Count("resolve")
	p2 := startPotluckEnv(t, env, "--data-dir", dataDir, "--model", "hf.co/owner/repo:Q8_0")
	p2.WaitStatus(t, "the model from the library", modelReady)
	if got := enginetest.Complete(t, p2.API, 24); got != want {
		t.Errorf("after restart: %q, want %q", got, want)
	}
	if after := h.Count("api") + h.Count("resolve"); after != before {
		t.Errorf("the restarted node asked the hub %d times for a model it has", after-before)
	}
}
