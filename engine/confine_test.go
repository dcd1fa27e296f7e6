package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/sandbox"
	"github.com/potluck-gpu/potluck/sandbox/sandboxtest"
)

// confined is the test runtime, its children started in the sandbox by
// this test binary (TestMain runs the launcher).
func confined(t *testing.T, rt engine.Runtime) engine.Runtime {
	t.Helper()
	if !sandbox.Launches {
		t.Skip("no sandbox launcher on this OS")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return rt.Confined(&engine.Confinement{Launcher: self, Cache: filepath.Join(t.TempDir(), "sandbox")})
}

// A split whose head and worker both run confined, the worker lending the
// software Vulkan device, gives one unconfined process's greedy text, and
// each child runs without privileges and filtered.
func TestConfinedSplit(t *testing.T) {
	rt := enginetest.VulkanRuntime(t)
	if rt.Worker.Path == "" {
		t.Skip("no RPC worker in this llama.cpp")
	}
	lvp := enginetest.Lavapipe(t)
	m := enginetest.TestModel(t)
	const n = 32
	want := cpuBaseline(t, rt, m, n)

	crt := confined(t, rt)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	devs, _, err := crt.Devices(ctx, lvp)
	if err != nil || len(devs) < 2 || devs[0].Name != "Vulkan0" {
		t.Fatalf("devices seen from the sandbox: %+v, %v", devs, err)
	}
	worker := enginetest.WorkerWith(t, crt, engine.WorkerSpec{Devices: []string{"Vulkan0"}, CacheDir: t.TempDir()}, enginetest.Options{Env: lvp})
	serveOffloaded(t, crt, engine.ServerSpec{Model: m.Path, RPC: []string{worker}, Devices: []string{"RPC0"}, GPULayers: -1}, nil, "RPC0", n, want)

	_, port, _ := strings.Cut(worker, ":")
	for _, arg := range []string{"--port " + port, "--rpc " + worker} {
		sandboxtest.RequireConfined(t, sandboxtest.Process(t, 0, arg), "the child with "+arg)
	}
}

func TestModelFilesOfASplit(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"m-00001-of-00003.gguf", "m-00002-of-00003.gguf", "m-00003-of-00003.gguf", "m-00001-of-00002.gguf", "other.gguf"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o600)
	}
	got := engine.ModelFiles(filepath.Join(dir, "m-00001-of-00003.gguf"))
	if len(got) != 3 || !strings.HasSuffix(got[2], "m-00003-of-00003.gguf") {
		t.Errorf("the parts of a split: %q", got)
	}
	if got := engine.ModelFiles(filepath.Join(dir, "other.gguf")); len(got) != 1 {
		t.Errorf("one file: %q", got)
	}
}
