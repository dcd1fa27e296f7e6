package sandbox_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/sandbox"
	"github.com/potluck-gpu/potluck/sandbox/sandboxtest"
)

// The real llama-server, confined to its runtime, its model and its cache,
// serves on the software Vulkan device with the same greedy text.
func TestLlamaServerConfined(t *testing.T) {
	if s := sandbox.Supported(); s.Missing != "" {
		t.Skip(s.Missing)
	}
	rt := enginetest.Runtime(t)
	m := enginetest.TestModel(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	port, err := engine.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	b := rt.Server
	p := sandbox.Policy{
		Exec:  []string{b.Path},
		Read:  append([]string{filepath.Dir(b.Path), m.Path}, b.LibraryPath...),
		Write: []string{cache}, Dir: cache, Bind: []uint16{uint16(port)}, System: true,
	}
	if b.Loader != "" {
		p.Exec = []string{b.Loader}
	}
	prog, argv := b.Argv(engine.ServerArgs(engine.ServerSpec{Model: m.Path, Port: port, Threads: 1, CtxSize: 512})...)
	prog, argv, policyEnv, err := sandbox.Wrap(self, p, prog, argv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, argv...)
	cmd.Env = append(os.Environ(), policyEnv, "GGML_VK_VISIBLE_DEVICES=0", "XDG_CACHE_HOME="+cache, "HOME="+cache)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if ctx.Err() != nil || cmd.ProcessState != nil {
			t.Fatalf("llama-server never became ready:\n%s", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	text := enginetest.Complete(t, base, 16)
	if m.Stories && !strings.HasPrefix(strings.TrimSpace(text), enginetest.StoriesPrefix[:20]) {
		t.Errorf("confined llama-server: %q", text)
	}
	sandboxtest.RequireConfined(t, cmd.Process.Pid, "llama-server")

	// The GPU stays usable: the Vulkan device (lavapipe here) is listed
	// from inside the sandbox as from outside.
	prog, argv = b.Argv("--list-devices")
	prog, argv, _, _ = sandbox.Wrap(self, p, prog, argv)
	list := exec.CommandContext(ctx, prog, argv...)
	list.Env = cmd.Env
	devs, err := list.CombinedOutput()
	if err != nil || !strings.Contains(string(devs), "Vulkan0") {
		t.Errorf("--list-devices in the sandbox: %v\n%s", err, devs)
	}
}
