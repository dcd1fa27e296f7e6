//go:build gpu && linux && cgo

package runtimes

import (
	"context"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/hw"
)

// TestGPUChoosesCUDA checks the choice of build on a machine with an
// NVIDIA GPU and a driver of 550 or later, from the real probe (NVML):
// CUDA, saying which GPU and driver. Run it with hw/gpucheck.sh or
// go test -tags gpu -run GPU -v ./runtimes/
func TestGPUChoosesCUDA(t *testing.T) {
	r, err := hw.Probe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var nvidia *hw.GPU
	for i := range r.GPUs {
		if r.GPUs[i].Vendor == hw.VendorNVIDIA {
			nvidia = &r.GPUs[i]
			break
		}
	}
	if nvidia == nil {
		t.Fatalf("no NVIDIA GPU in the probe: %+v (this test needs an NVIDIA GPU and driver)", r.GPUs)
	}
	major, ok := NVIDIADriverMajor(*nvidia)
	c := ChooseFor(Platform{r.OS, r.Arch}, &r)
	t.Logf("%s, driver %s (major %d), CUDA %s: %s because %s", nvidia.Name, nvidia.Driver, major, nvidia.CUDAVersion, c.Backend, c.Why)
	switch {
	case !ok:
		t.Errorf("the driver version %q of %s cannot be read", nvidia.Driver, nvidia.Name)
	case major >= minCUDADriver && (c.Backend != BackendCUDA || !strings.Contains(c.Why, nvidia.Driver)):
		t.Errorf("driver %s: chose %s (%s), want CUDA naming the driver", nvidia.Driver, c.Backend, c.Why)
	case major < minCUDADriver && c.Backend != BackendVulkan:
		t.Errorf("driver %s, older than %d: chose %s, want Vulkan", nvidia.Driver, minCUDADriver, c.Backend)
	}
}
