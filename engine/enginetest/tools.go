package enginetest

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/potluck-gpu/potluck/engine/ggufgen"
)

var (
	toolOnce sync.Once
	toolPath string
	toolErr  error
)

// ToolModel is a tiny random llama with a chat template for tools, which
// calls a tool wherever a request offers one (ggufgen.ToolLlama). It is
// written once per test binary.
func ToolModel(t testing.TB) Model {
	t.Helper()
	toolOnce.Do(func() {
		dir, err := os.MkdirTemp("", "potluck-tools-")
		if err != nil {
			toolErr = err
			return
		}
		toolPath = filepath.Join(dir, "tool-llama.gguf")
		toolErr = ggufgen.WriteFile(toolPath, ggufgen.ToolLlama())
	})
	if toolErr != nil {
		t.Fatalf("generate the tool-calling test model: %v", toolErr)
	}
	return Model{Path: toolPath, Alias: "tool-llama"}
}
