package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/internal/nodetest"
)

// modelDoc is a model as /v1/models lists it.
type modelDoc struct {
	ID      string `json:"id"`
	Potluck struct {
		Nodes        []string `json:"nodes"`
		Availability string   `json:"availability"`
		Capabilities []string `json:"capabilities"`
		Details      struct {
			Arch string `json:"arch"`
		} `json:"details"`
	} `json:"potluck"`
}

// waitModels polls /v1/models until ok accepts the list.
func (p *proc) waitModels(t *testing.T, what string, ok func([]modelDoc) bool) []modelDoc {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	var models struct {
		Data []modelDoc `json:"data"`
	}
	for time.Now().Before(deadline) {
		models.Data = nil
		if nodetest.GetJSON(p.API+"/v1/models", &models) == nil && ok(models.Data) {
			return models.Data
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: timed out waiting for %s; models: %+v\n%s", p.API, what, models.Data, p.Logs.String())
	return nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := engine.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// sdkResult is the summary line a client script prints.
type sdkResult struct {
	Nodes        []string `json:"nodes"`
	Capabilities []string `json:"capabilities"`
	Unknown      int      `json:"unknown_model_status"`
}

// runSDK runs a script of server/testdata/sdk with the official client of
// an API against a node, and returns its summary.
func runSDK(t *testing.T, script string, env ...string) sdkResult {
	t.Helper()
	dir, _ := filepath.Abs("server/testdata/sdk")
	for _, pkg := range []string{"openai", "@anthropic-ai/sdk", "ollama", "ai", "@ai-sdk/openai", "@ai-sdk/anthropic", "@ai-sdk/openai-compatible"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg)); err != nil {
			t.Fatalf("the %s npm package is not installed in %s: run `make sdk` (`make test` does)", pkg, dir)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: the client raised: %v\n%s", script, err, out)
	}
	var res sdkResult
	last := strings.TrimSpace(string(out))
	last = last[strings.LastIndexByte(last, '\n')+1:]
	if err := json.Unmarshal([]byte(last), &res); err != nil {
		t.Fatalf("%s output: %v\n%s", script, err, out)
	}
	t.Logf("%s (%s): %s", script, time.Since(start).Round(time.Millisecond), last)
	return res
}

// The official clients of the OpenAI, Anthropic and Ollama APIs (the npm
// packages) work against a node serving a model with embeddings, and
// against a node with no model, which answers through that one: every
// answer names the node that served it.
func TestSDKs(t *testing.T) {
	m := enginetest.TestModel(t)
	token := newToken(t)
	env := []string{"POTLUCK_P2P_HEARTBEAT=1s"}
	ollamaA := freeAddr(t)
	a := startPotluckEnv(t, env, meshArgs(token, "--name", "alpha", "--model", m.Path, "--share", "server",
		"--embeddings", "--ollama-api", ollamaA)...)
	boot := a.meshStatus(t).P2PAddrs[0]
	// Picked only now: a port that was free before alpha started may be
	// taken by the time the client starts (once, the client could not
	// listen on it and exited).
	ollamaC := freeAddr(t)
	c := startPotluckEnv(t, env, meshArgs(token, "--name", "client", "--bootstrap", boot, "--ollama-api", ollamaC)...)
	alpha := "alpha/" + a.meshStatus(t).PeerID
	// The client learns what the peer's model does.
	c.waitModels(t, "the peer's model with embeddings", func(ms []modelDoc) bool {
		return len(ms) == 1 && ms[0].ID == m.Alias && slices.Equal(ms[0].Potluck.Nodes, []string{alpha}) &&
			slices.Contains(ms[0].Potluck.Capabilities, "embedding") && ms[0].Potluck.Details.Arch == "llama"
	})
	for _, node := range []struct {
		name        string
		p           *proc
		ollama      string
		capabilites []string
	}{
		{"served here", a, ollamaA, []string{"completion", "embedding"}},
		{"through a peer", c, ollamaC, []string{"completion", "embedding"}},
	} {
		t.Run(node.name, func(t *testing.T) {
			env := []string{"POTLUCK_BASE_URL=" + node.p.API, "POTLUCK_OLLAMA_URL=http://" + node.ollama, "POTLUCK_MODEL=" + m.Alias}
			for _, script := range []string{"openai.mjs", "anthropic.mjs", "ollama.mjs", "aisdk.mjs"} {
				res := runSDK(t, script, env...)
				if !slices.Equal(res.Nodes, []string{alpha}) || (res.Unknown != 404 && script != "aisdk.mjs") {
					t.Errorf("%s: answered by %v (want %s only), unknown model %d", script, res.Nodes, alpha, res.Unknown)
				}
				if res.Capabilities != nil && !slices.Equal(res.Capabilities, node.capabilites) {
					t.Errorf("%s: capabilities %v, want %v", script, res.Capabilities, node.capabilites)
				}
			}
		})
	}
}

// A model whose GGUF says it makes embeddings is served as one, with no
// flag: the API says so, and serves embeddings.
func TestEmbeddingModelServedAsOne(t *testing.T) {
	m := enginetest.EmbeddingModel(t)
	p := startPotluck(t, "--model", m.Path)
	p.WaitStatus(t, "model ready", modelReady)
	ms := p.waitModels(t, "the model", func(ms []modelDoc) bool { return len(ms) == 1 })
	if !slices.Equal(ms[0].Potluck.Capabilities, []string{"embedding"}) {
		t.Errorf("capabilities %v, want [embedding]", ms[0].Potluck.Capabilities)
	}
	var emb struct {
		Data []struct {
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
	}
	resp, err := httpPostJSON(p.API+"/v1/embeddings", `{"model":"`+m.Alias+`","input":["a story","a cat","a dog"]}`, &emb)
	if err != nil || resp != 200 || len(emb.Data) != 3 || len(emb.Data[0].Embedding) != 64 {
		t.Errorf("embeddings: %d %v: %d vectors", resp, err, len(emb.Data))
	}
}

// httpPostJSON posts body and decodes the answer into v; it returns the
// status.
func httpPostJSON(url, body string, v any) (int, error) {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
}

// Embeddings can be turned on and off for the model being served, through
// the node API (the tray does the same): the model restarts, the API says
// what it now does, and the choice is kept.
func TestEmbeddingsChosenPerModel(t *testing.T) {
	m := enginetest.TestModel(t)
	p := startPotluck(t, "--model", m.Path)
	p.WaitStatus(t, "model ready", modelReady)
	embeddings := func() int {
		var v map[string]any
		status, err := httpPostJSON(p.API+"/v1/embeddings", `{"model":"`+m.Alias+`","input":"a story"}`, &v)
		if err != nil {
			t.Fatal(err)
		}
		return status
	}
	if got := embeddings(); got != 501 {
		t.Errorf("embeddings before they were chosen: %d, want 501", got)
	}
	for _, on := range []bool{true, false} {
		var st map[string]any
		if status, err := httpPostJSON(p.API+"/api/serve", fmt.Sprintf(`{"model":%q,"embeddings":%v}`, m.Path, on), &st); err != nil || status != 200 {
			t.Fatalf("serve with embeddings %v: %d %v", on, status, err)
		}
		want := []string{"completion"}
		if on {
			want = append(want, "embedding")
		}
		p.waitModels(t, fmt.Sprintf("capabilities %v", want), func(ms []modelDoc) bool {
			return len(ms) == 1 && slices.Equal(ms[0].Potluck.Capabilities, want)
		})
		p.WaitStatus(t, "model ready", modelReady)
		var lib struct {
			Embeddings []string `json:"embeddings"`
		}
		if err := nodetest.GetJSON(p.API+"/api/models", &lib); err != nil || slices.Contains(lib.Embeddings, m.Path) != on {
			t.Errorf("embeddings %v: the library says %v (%v)", on, lib.Embeddings, err)
		}
		if got, want := embeddings(), map[bool]int{true: 200, false: 501}[on]; got != want {
			t.Errorf("embeddings %v: /v1/embeddings answered %d, want %d", on, got, want)
		}
	}
}
