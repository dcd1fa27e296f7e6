package enginetest

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/potluck-gpu/potluck/engine/ggufgen"
)

// onceModel is a generated model, written once per test binary.
type onceModel struct {
	once sync.Once
	path string
	err  error
}

// get writes m as name in a new temporary directory the first time, and
// returns its path.
func (o *onceModel) get(t testing.TB, name string, m ggufgen.TinyLlama) string {
	t.Helper()
	o.once.Do(func() {
		dir, err := os.MkdirTemp("", "potluck-model-")
		if err != nil {
			o.err = err
			return
		}
		o.path = filepath.Join(dir, name)
		o.err = ggufgen.WriteFile(o.path, m)
	})
	if o.err != nil {
		t.Fatalf("generate the test model %s: %v", name, o.err)
	}
	return o.path
}

var toolModel onceModel

// ToolModel is a tiny random llama with a chat template for tools, which
// calls a tool wherever a request offers one (ggufgen.ToolLlama). It is
// written once per test binary.
func ToolModel(t testing.TB) Model {
	t.Helper()
	return Model{Path: toolModel.get(t, "tool-llama.gguf", ggufgen.ToolLlama()), Alias: "tool-llama"}
}
