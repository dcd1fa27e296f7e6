package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/internal/nodetest"
)

// These tests run real potluck nodes whose llama.cpp sees a real Vulkan
// device: Mesa's lavapipe, which runs on the CPU. Every one checks that the
// greedy text is the CPU's.

// cpuText is what the test model says on one CPU-only node.
func cpuText(t *testing.T, m enginetest.Model) string {
	t.Helper()
	p := startPotluck(t, "--model", m.Path)
	p.WaitStatus(t, "the CPU baseline ready", modelReady)
	return enginetest.Complete(t, p.API, 24)
}

// deviceLayers maps "node/device" to layers in a plan.
func deviceLayers(p engine.Plan) map[string]int {
	out := map[string]int{}
	for _, d := range p.Devices {
		out[d.Node+"/"+d.Device] = d.Layers
	}
	return out
}

// One node with lavapipe: with --device Vulkan0 every layer runs there;
// without it the speed model keeps the slow software device out.
func TestGPUOneNode(t *testing.T) {
	enginetest.VulkanRuntime(t)
	lvp := append(enginetest.Lavapipe(t), enginetest.LogVerbose)
	m := enginetest.TestModel(t)
	want := cpuText(t, m)

	dir := t.TempDir()
	gpu := startPotluckEnv(t, lvp, "--model", m.Path, "--device", "Vulkan0", "--data-dir", dir)
	gpu.WaitStatus(t, "the model ready on Vulkan0", modelReady)
	if got := enginetest.Complete(t, gpu.API, 24); got != want {
		t.Errorf("on Vulkan0: %q, on the CPU: %q", got, want)
	}
	enginetest.RequireOffloaded(t, filepath.Join(dir, "logs", "llama-server.log"), "Vulkan0")
	p := gpu.plan(t).Plan
	if !slices.Equal(p.ServerDevices, []string{"Vulkan0"}) || p.GPULayers != m.Layers(t)+1 {
		t.Errorf("plan with --device Vulkan0: --device %v --n-gpu-layers %d\n%s", p.ServerDevices, p.GPULayers, p)
	}

	auto := startPotluckEnv(t, lvp, "--model", m.Path)
	auto.WaitStatus(t, "the model ready", modelReady)
	if got := enginetest.Complete(t, auto.API, 24); got != want {
		t.Errorf("planned freely: %q, on the CPU: %q", got, want)
	}
	p = auto.plan(t).Plan
	left := ""
	for _, e := range p.Excluded {
		if e.Device == "Vulkan0" {
			left = e.Reason
		}
	}
	if len(p.ServerDevices) != 0 || !strings.Contains(left, "slower with it") {
		t.Errorf("without --device the plan should keep lavapipe out as slower: --device %v, Vulkan0 left out: %q\n%s", p.ServerDevices, left, p)
	}
	t.Logf("lavapipe left out: %s", left)

	// Choosing the device at run time (the tray's Devices menu, or the
	// API) moves the model there, and the choice is kept.
	resp, err := http.Post(auto.API+"/api/devices", "application/json", strings.NewReader(`{"devices":["Vulkan9"]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "llama.cpp has no such device; it sees CPU, Vulkan0") {
		t.Errorf("choosing a device llama.cpp does not have: %s %s, want 400 naming the devices it sees", resp.Status, body)
	}
	resp, err = http.Post(auto.API+"/api/devices", "application/json", strings.NewReader(`{"devices":["Vulkan0"]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("choose Vulkan0: %s", resp.Status)
	}
	auto.WaitStatus(t, "the model moved to Vulkan0", func(st map[string]any) bool {
		return modelReady(st) && slices.Equal(auto.plan(t).Plan.ServerDevices, []string{"Vulkan0"})
	})
	if got := enginetest.Complete(t, auto.API, 24); got != want {
		t.Errorf("moved to Vulkan0: %q, on the CPU: %q", got, want)
	}
}

// A head with no GPU and a worker lending lavapipe: layers land on the
// worker's Vulkan device through the mesh.
func TestGPUOnAWorker(t *testing.T) {
	enginetest.VulkanRuntime(t)
	lvp := enginetest.Lavapipe(t)
	m := enginetest.TestModel(t)
	want := cpuText(t, m)
	token := newToken(t)

	worker := startPotluckEnv(t, lvp, meshArgs(token, "--share", "worker", "--device", "Vulkan0")...)
	ws := worker.meshStatus(t)
	head := startPotluck(t, meshArgs(token, "--bootstrap", ws.P2PAddrs[0], "--model", m.Path, "--split", "all")...)
	var p engine.Plan
	head.WaitStatus(t, "the model split onto the worker's Vulkan0", func(st map[string]any) bool {
		if !modelReady(st) {
			return false
		}
		p = head.plan(t).Plan
		return deviceLayers(p)[ws.PeerID+"/Vulkan0"] > 0
	})
	if got := enginetest.Complete(t, head.API, 24); got != want {
		t.Errorf("split onto the worker's Vulkan0: %q, on the CPU: %q", got, want)
	}
	if !slices.Equal(p.ServerDevices, []string{"RPC0"}) {
		t.Errorf("the worker lends Vulkan0 alone, the head should see it as RPC0:\n%s", p)
	}
	t.Logf("plan:\n%s", p)
}

// A head with lavapipe and a worker lending its CPU: the plan covers both.
func TestGPUHeadAndCPUWorker(t *testing.T) {
	enginetest.VulkanRuntime(t)
	lvp := enginetest.Lavapipe(t)
	m := enginetest.TestModel(t)
	want := cpuText(t, m)
	token := newToken(t)

	worker := startPotluck(t, meshArgs(token, "--share", "worker")...)
	ws := worker.meshStatus(t)
	head := startPotluckEnv(t, lvp, meshArgs(token, "--bootstrap", ws.P2PAddrs[0], "--model", m.Path, "--split", "all", "--device", "Vulkan0")...)
	hs := head.meshStatus(t)
	var p engine.Plan
	head.WaitStatus(t, "the model on the head's Vulkan0 and the worker's CPU", func(st map[string]any) bool {
		if !modelReady(st) {
			return false
		}
		p = head.plan(t).Plan
		l := deviceLayers(p)
		return l[hs.PeerID+"/Vulkan0"] > 0 && l[ws.PeerID+"/CPU"] > 0
	})
	if got := enginetest.Complete(t, head.API, 24); got != want {
		t.Errorf("on the head's Vulkan0 and the worker's CPU: %q, on the CPU: %q", got, want)
	}
	if !slices.Contains(p.ServerDevices, "Vulkan0") || !slices.Contains(p.ServerDevices, "RPC0") {
		t.Errorf("llama-server should get both devices:\n%s", p)
	}
	t.Logf("plan:\n%s", p)
}

// planKey is what must not move while a model is served: the launch
// settings and every device's offer.
func planKey(p engine.Plan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v %d %v %v|", p.ServerDevices, p.GPULayers, p.TensorSplit, p.Workers)
	for _, d := range p.Devices {
		fmt.Fprintf(&b, "%s/%s:%d/%d ", d.Node, d.Device, d.Layers, d.Offer)
	}
	return b.String()
}

// A head serving a model of over 1 GiB keeps its offers and its plan while
// the model sits in memory: no re-plan, no restart. (Offers used to follow
// free memory, which the model itself takes.)
func TestOffersStayPutWithABigModel(t *testing.T) {
	if testing.Short() {
		t.Skip("a 5-minute test")
	}
	m := enginetest.BigModel(t)
	p := startPotluck(t, "--model", m.Path)
	p.WaitStatus(t, "the big model ready", modelReady)
	first := planKey(p.plan(t).Plan)
	var st map[string]any
	if err := nodetest.GetJSON(p.API+"/api/status", &st); err != nil {
		t.Fatal(err)
	}
	starts := st["model"].(map[string]any)["state"].(map[string]any)["starts"]
	offered := fmt.Sprint(st["devices"])
	watch := enginetest.SoakDuration(5 * time.Minute)
	deadline := time.Now().Add(watch)
	polls := 0
	for time.Now().Before(deadline) {
		time.Sleep(10 * time.Second)
		polls++
		if got := planKey(p.plan(t).Plan); got != first {
			t.Fatalf("the plan moved after %d polls:\n%s\nwas\n%s", polls, got, first)
		}
		if err := nodetest.GetJSON(p.API+"/api/status", &st); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(st["devices"]); got != offered {
			t.Fatalf("the offers moved:\n%s\nwas\n%s", got, offered)
		}
		model := st["model"].(map[string]any)
		if model["ready"] != true || model["state"].(map[string]any)["starts"] != starts {
			t.Fatalf("llama-server restarted or stopped: %v", model)
		}
	}
	if strings.Contains(p.Logs.String(), "plan changed") {
		t.Error("the node re-planned")
	}
	t.Logf("%s model served %s with the same plan and offers (%d polls): %s", m.Size(), watch, polls, first)
}
