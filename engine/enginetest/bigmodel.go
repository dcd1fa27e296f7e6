package enginetest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
)

// BigLlama is a random llama of 1.1 GB (F32): of the size of a real small
// model, so memory, loading and planning behave as they do with one.
var BigLlama = ggufgen.TinyLlama{Vocab: 8192, Embd: 1024, Layers: 17, Heads: 16, KVHeads: 4, FF: 4096, Context: 512, Seed: 11}

// BigModel writes BigLlama for the test and removes it afterwards.
func BigModel(t testing.TB) Model {
	t.Helper()
	path := filepath.Join(t.TempDir(), "big-llama.gguf")
	start := time.Now()
	if err := ggufgen.WriteFile(path, BigLlama); err != nil {
		t.Fatalf("generate the big model: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < 1<<30 {
		t.Fatalf("the big model is %d bytes, want at least 1 GiB", fi.Size())
	}
	t.Logf("generated a %.2f GB model in %s", float64(fi.Size())/1e9, time.Since(start).Round(time.Millisecond))
	return Model{Path: path, Alias: "big-llama"}
}

// Layers is the model's number of layers.
func (m Model) Layers(t testing.TB) int {
	t.Helper()
	est, err := engine.EstimateModel(m.Path, 0)
	if err != nil {
		t.Fatal(err)
	}
	return est.Layers
}

// Size is the model file's size for a person, e.g. "1.1 GB".
func (m Model) Size() string {
	fi, err := os.Stat(m.Path)
	if err != nil {
		return "?"
	}
	return formatGB(fi.Size())
}

func formatGB(n int64) string { return fmt.Sprintf("%.1f GB", float64(n)/1e9) }

// SoakDuration is how long a test that watches for drift watches: def, or
// POTLUCK_TEST_SOAK (e.g. "30s") to try it quicker by hand.
func SoakDuration(def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv("POTLUCK_TEST_SOAK")); err == nil && d > 0 {
		return d
	}
	return def
}
