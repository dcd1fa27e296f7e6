package enginetest

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/potluck-gpu/potluck/engine/ggufgen"
)

var (
	poolOnce  sync.Once
	poolPaths map[uint32]string
	poolErr   error
)

// EmbeddingModel is a tiny random llama whose GGUF says it pools by the
// mean of its token embeddings: an embedding model, as far as llama.cpp
// and Potluck can tell. It is written once per test binary.
func EmbeddingModel(t testing.TB) Model {
	t.Helper()
	return Model{Path: pooled(t, 1), Alias: "tiny-embed"}
}

// RerankModel is a tiny random llama whose GGUF says it pools by rank: a
// reranker. It is written once per test binary.
func RerankModel(t testing.TB) Model {
	t.Helper()
	return Model{Path: pooled(t, 4), Alias: "tiny-rerank"}
}

func pooled(t testing.TB, pooling uint32) string {
	t.Helper()
	poolOnce.Do(func() {
		dir, err := os.MkdirTemp("", "potluck-pooled-")
		if err != nil {
			poolErr = err
			return
		}
		poolPaths = map[uint32]string{}
		for _, p := range []struct {
			pooling uint32
			name    string
		}{{1, "tiny-embed.gguf"}, {4, "tiny-rerank.gguf"}} {
			m := ggufgen.DefaultTinyLlama()
			m.Pooling, m.Seed = p.pooling, int64(10+p.pooling)
			path := filepath.Join(dir, p.name)
			if poolErr = ggufgen.WriteFile(path, m); poolErr != nil {
				return
			}
			poolPaths[p.pooling] = path
		}
	})
	if poolErr != nil {
		t.Fatalf("generate a pooled test model: %v", poolErr)
	}
	return poolPaths[pooling]
}
