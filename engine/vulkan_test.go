package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
)

// These tests list devices with the real llama-server and run the GPU paths
// on lavapipe, Mesa's software Vulkan device: slow, but real Vulkan through
// ggml's Vulkan backend, so they hold on a machine without a GPU.

func deviceNames(devs []engine.Device) []string {
	names := make([]string, len(devs))
	for i, d := range devs {
		names[i] = d.Name
	}
	return names
}

func listDevices(t *testing.T, rt engine.Runtime, env []string) []engine.Device {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	devs, problems, err := rt.Devices(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if p.Backend == "Vulkan" {
			t.Errorf("Vulkan backend problem: %s", p.Message)
		}
		t.Logf("backend problem: %+v", p)
	}
	if len(devs) == 0 || devs[len(devs)-1] != (engine.Device{Name: "CPU", Backend: "CPU"}) {
		t.Errorf("devices %q: want the CPU last", deviceNames(devs))
	}
	return devs
}

func TestDevicesLavapipe(t *testing.T) {
	rt := enginetest.VulkanRuntime(t)
	devs := listDevices(t, rt, enginetest.Lavapipe(t))
	if got := deviceNames(devs); !slices.Equal(got, []string{"Vulkan0", "CPU"}) {
		t.Fatalf("devices with lavapipe = %q, want Vulkan0 then CPU", got)
	}
	if d := devs[0]; d.Backend != "Vulkan" || !strings.HasPrefix(d.Description, "llvmpipe") || d.TotalBytes == 0 || d.FreeBytes == 0 {
		t.Errorf("lavapipe device = %+v", d)
	}
	// Without the variables ggml passes over the CPU-type Vulkan device.
	for _, d := range listDevices(t, rt, nil) {
		if strings.HasPrefix(d.Description, "llvmpipe") {
			t.Errorf("lavapipe listed without GGML_VK_VISIBLE_DEVICES: %+v", d)
		}
	}
}

// cpuBaseline serves m on the CPU alone and returns its greedy text.
func cpuBaseline(t *testing.T, rt engine.Runtime, m enginetest.Model, n int) string {
	t.Helper()
	base := enginetest.Server(t, rt, engine.ServerSpec{Model: m.Path, Devices: []string{"none"}})
	text, tps := enginetest.CompleteTimed(t, base, n)
	t.Logf("CPU: %.0f tokens/s", tps)
	if m.Stories && !strings.HasPrefix(strings.TrimSpace(text), enginetest.StoriesPrefix) {
		t.Fatalf("CPU greedy text = %q", text)
	}
	return text
}

func TestVulkanOffloadMatchesCPU(t *testing.T) {
	rt := enginetest.VulkanRuntime(t)
	lvp := enginetest.Lavapipe(t)
	m := enginetest.TestModel(t)
	const n = 48
	want := cpuBaseline(t, rt, m, n)

	serveOffloaded(t, rt, engine.ServerSpec{Model: m.Path, Devices: []string{"Vulkan0"}, GPULayers: -1}, lvp, "Vulkan0", n, want)
}

// serveOffloaded serves spec with env, checks that every layer went to dev
// and that n greedy tokens are want.
func serveOffloaded(t *testing.T, rt engine.Runtime, spec engine.ServerSpec, env []string, dev string, n int, want string) {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), "server.log")
	base := enginetest.ServerWith(t, rt, spec, enginetest.Options{Env: append(slices.Clone(env), enginetest.LogVerbose), LogFile: logFile})
	enginetest.RequireOffloaded(t, logFile, dev)
	got, tps := enginetest.CompleteTimed(t, base, n)
	t.Logf("%s: %.0f tokens/s", dev, tps)
	if got != want {
		t.Errorf("greedy text on %s differs from the CPU's:\n%s %q\ncpu %q", dev, dev, got, want)
	}
}

// A worker lends the devices it is told to, in that order; a head sees them
// as RPC0, RPC1, … and can put every layer on the worker's Vulkan device.
func TestWorkerLendsVulkan(t *testing.T) {
	rt := enginetest.VulkanRuntime(t)
	if rt.Worker.Path == "" {
		t.Skip("no RPC worker in this llama.cpp")
	}
	lvp := enginetest.Lavapipe(t)
	local := listDevices(t, rt, lvp)[0] // Vulkan0 as the worker sees it
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	gpuOnly := enginetest.WorkerWith(t, rt, engine.WorkerSpec{Devices: []string{"Vulkan0"}}, enginetest.Options{Env: lvp})
	both := enginetest.WorkerWith(t, rt, engine.WorkerSpec{Devices: []string{"Vulkan0", "CPU"}}, enginetest.Options{Env: lvp})
	devs, err := rt.RPCDevices(ctx, []string{gpuOnly, both}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []engine.Device{
		{Name: "RPC0", Backend: "RPC", Description: gpuOnly, TotalBytes: local.TotalBytes},
		{Name: "RPC1", Backend: "RPC", Description: both, TotalBytes: local.TotalBytes},
		{Name: "RPC2", Backend: "RPC", Description: both}, // the worker's CPU: its RAM
	}
	if len(devs) != len(want) {
		t.Fatalf("head sees %+v, want %d RPC devices", devs, len(want))
	}
	for i, d := range devs {
		w := want[i]
		if d.Name != w.Name || d.Backend != w.Backend || d.Description != w.Description || (w.TotalBytes != 0 && d.TotalBytes != w.TotalBytes) || d.TotalBytes == 0 {
			t.Errorf("device %d = %+v, want %+v", i, d, w)
		}
	}

	m := enginetest.TestModel(t)
	const n = 48
	wantText := cpuBaseline(t, rt, m, n)
	// The head itself has no GPU: every layer goes to the worker's Vulkan0.
	serveOffloaded(t, rt, engine.ServerSpec{Model: m.Path, RPC: []string{gpuOnly}, Devices: []string{"RPC0"}, GPULayers: -1}, nil, "RPC0", n, wantText)
}

// A backend library that does not load (here a CUDA backend that is no
// library at all, as good as one without its driver) is reported in
// llama.cpp's words, and the devices are still listed.
func TestDevicesReportsBrokenBackend(t *testing.T) {
	rt := enginetest.Runtime(t)
	if rt.Server.Loader == "" {
		t.Skip("needs the provisioned runtime, whose library path can be extended")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "libggml-cuda.so"), []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	rt.Server.LibraryPath = append([]string{dir}, rt.Server.LibraryPath...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	devs, problems, err := rt.Devices(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) == 0 || devs[len(devs)-1].Name != "CPU" {
		t.Errorf("devices = %q, want the CPU last", deviceNames(devs))
	}
	if len(problems) != 1 || problems[0].Backend != "CUDA" || !strings.Contains(problems[0].Message, "failed to load "+filepath.Join(dir, "libggml-cuda.so")) {
		t.Errorf("problems = %+v, want CUDA's load failure", problems)
	}
	t.Logf("%+v", problems)
}
