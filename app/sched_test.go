package app

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/potluck-gpu/potluck/engine/ggufgen"
	"github.com/potluck-gpu/potluck/library"
)

// A request names a model of the library, never a file: a member's
// request for a path on this machine is a model that is not here, and
// learns nothing of which files there are.
func TestSchedulerResolvesLibraryNamesOnly(t *testing.T) {
	lib, elsewhere := t.TempDir(), t.TempDir()
	for _, p := range []string{filepath.Join(lib, "tiny.gguf"), filepath.Join(elsewhere, "secret.gguf")} {
		if err := ggufgen.WriteFile(p, ggufgen.DefaultTinyLlama()); err != nil {
			t.Fatal(err)
		}
	}
	cfg := DefaultConfig()
	cfg.DataDir, cfg.API = t.TempDir(), "127.0.0.1:0"
	cfg.ModelRoots = []library.Root{{Source: library.SourceDir, Dir: lib}}
	n, err := NewNode(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tiny", "tiny:latest", "tiny.gguf"} {
		if key, ok := n.sched.Resolve(name); !ok || key != "tiny" {
			t.Errorf("Resolve(%q) = %q, %v; want tiny", name, key, ok)
		}
	}
	for _, name := range []string{filepath.Join(elsewhere, "secret.gguf"), filepath.Join(lib, "tiny.gguf"), os.Args[0], "secret"} {
		if key, ok := n.sched.Resolve(name); ok {
			t.Errorf("Resolve(%q) = %q: a path is no model name", name, key)
		}
	}
}
