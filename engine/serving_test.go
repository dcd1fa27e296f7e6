package engine_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
)

func TestPlanServing(t *testing.T) {
	tests := []struct {
		name       string
		info       engine.ModelInfo
		embeddings bool
		want       engine.Serving
	}{
		{"chat model", engine.ModelInfo{Arch: "llama"}, false,
			engine.Serving{Capabilities: []string{"completion"}}},
		{"chat model with embeddings", engine.ModelInfo{Arch: "llama"}, true,
			engine.Serving{Embeddings: true, Pooling: "mean", Capabilities: []string{"completion", "embedding"}}},
		{"embedding model", engine.ModelInfo{Arch: "qwen3", Pooling: "last"}, false,
			engine.Serving{Embeddings: true, Capabilities: []string{"embedding"}}},
		{"embedding model, embeddings asked", engine.ModelInfo{Arch: "bert", Pooling: "cls"}, true,
			engine.Serving{Embeddings: true, Capabilities: []string{"embedding"}}},
		{"encoder naming no pooling", engine.ModelInfo{Arch: "nomic-bert"}, false,
			engine.Serving{Embeddings: true, Pooling: "mean", Capabilities: []string{"embedding"}}},
		{"reranker", engine.ModelInfo{Arch: "bert", Pooling: "rank"}, true,
			engine.Serving{Rerank: true, Capabilities: []string{"rerank"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := engine.PlanServing(tt.info, tt.embeddings)
			if got.Embeddings != tt.want.Embeddings || got.Rerank != tt.want.Rerank || got.Pooling != tt.want.Pooling ||
				!slices.Equal(got.Capabilities, tt.want.Capabilities) {
				t.Errorf("PlanServing(%+v, %v) = %+v, want %+v", tt.info, tt.embeddings, got, tt.want)
			}
		})
	}
}

// DescribeModel reads the pooling type a GGUF file names.
func TestDescribePooling(t *testing.T) {
	dir := t.TempDir()
	for pooling, want := range []string{"", "mean", "cls", "last", "rank"} {
		m := ggufgen.DefaultTinyLlama()
		m.Pooling = uint32(pooling)
		path := filepath.Join(dir, want+"pool.gguf")
		if err := ggufgen.WriteFile(path, m); err != nil {
			t.Fatal(err)
		}
		info, err := engine.DescribeModel(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Pooling != want {
			t.Errorf("pooling_type %d: Pooling = %q, want %q", pooling, info.Pooling, want)
		}
	}
}

// A model served as PlanServing says answers on the endpoints its
// capabilities name, in a real llama-server.
func TestServeByCapability(t *testing.T) {
	rt := enginetest.Runtime(t)
	for _, tc := range []struct {
		model      enginetest.Model
		embeddings bool
		want       []string // paths that answer 200
		refuse     []string // paths llama-server refuses
	}{
		{enginetest.EmbeddingModel(t), false, []string{"/v1/embeddings"}, []string{"/v1/rerank"}},
		{enginetest.RerankModel(t), false, []string{"/v1/rerank"}, nil},
		{enginetest.TestModel(t), true, []string{"/v1/embeddings", "/v1/chat/completions"}, []string{"/v1/rerank"}},
		{enginetest.TestModel(t), false, []string{"/v1/chat/completions"}, []string{"/v1/embeddings", "/v1/rerank"}},
	} {
		info, err := engine.DescribeModel(tc.model.Path)
		if err != nil {
			t.Fatal(err)
		}
		serving := engine.PlanServing(info, tc.embeddings)
		spec := engine.ServerSpec{Model: tc.model.Path, Alias: tc.model.Alias}
		serving.Apply(&spec)
		base := enginetest.Server(t, rt, spec)
		for _, path := range append(tc.want, tc.refuse...) {
			resp, err := http.Post(base+path, "application/json", strings.NewReader(
				`{"input":["a story","another"],"query":"a story","documents":["a story","a cat"],"messages":[{"role":"user","content":"hi"}],"max_tokens":2}`))
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			ok := resp.StatusCode == http.StatusOK
			if ok != slices.Contains(tc.want, path) {
				t.Errorf("%s served with %+v: %s on %s: %v", tc.model.Alias, serving, resp.Status, path, body)
			}
		}
	}
}
