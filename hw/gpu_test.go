//go:build gpu && linux && cgo

package hw

import (
	"context"
	"os/exec"
	"testing"
)

// TestGPUCheckNvidiaSMI compares NVML's readings with nvidia-smi's on a
// machine with an NVIDIA GPU and driver. Run it with hw/gpucheck.sh or
// go test -tags gpu -run GPU -v ./hw/
func TestGPUCheckNvidiaSMI(t *testing.T) {
	out, err := exec.Command("nvidia-smi", "--query-gpu=name,memory.total,memory.used", "--format=csv,noheader,nounits").Output()
	if err != nil {
		t.Fatalf("nvidia-smi: %v (this test needs an NVIDIA GPU and driver)", err)
	}
	smi, err := parseNvidiaSMI(string(out))
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	nv, err := openNVML(ctx, discard())
	if err != nil {
		t.Fatal(err)
	}
	gpus, err := nv.GPUs(ctx)
	nv.Close()
	if err != nil {
		t.Fatalf("NVML: %v", err)
	}
	if len(gpus) != len(smi) || len(gpus) == 0 {
		t.Fatalf("NVML sees %d GPUs, nvidia-smi %d", len(gpus), len(smi))
	}
	for i, g := range gpus {
		s := smi[i]
		total, used := g.VRAMTotal/MiB, g.VRAMUsed/MiB
		t.Logf("GPU %d  NVML: %q total %d MiB used %d MiB free %d MiB util %d%% %dC driver %s CUDA %s uuid %s pci %s",
			i, g.Name, total, used, g.VRAMFree/MiB, g.Utilization, g.TemperatureC, g.Driver, g.CUDAVersion, g.UUID, g.PCIAddress)
		t.Logf("GPU %d  nvidia-smi: %q total %d MiB used %d MiB", i, s.Name, s.TotalMiB, s.UsedMiB)
		if g.Name != s.Name {
			t.Errorf("GPU %d: name %q, nvidia-smi says %q", i, g.Name, s.Name)
		}
		if !g.VRAMKnown || diff(total, s.TotalMiB) > 1 {
			t.Errorf("GPU %d: total %d MiB (known %v), nvidia-smi says %d MiB", i, total, g.VRAMKnown, s.TotalMiB)
		}
		// Other processes may allocate between the two readings.
		if diff(used, s.UsedMiB) > 256 {
			t.Errorf("GPU %d: used %d MiB, nvidia-smi says %d MiB", i, used, s.UsedMiB)
		}
		if g.Backend != BackendCUDA || g.CUDAVersion == "" || g.Driver == "" || g.UUID == "" {
			t.Errorf("GPU %d: incomplete %+v", i, g)
		}
	}

	// The full probe lists each NVIDIA GPU once (NVML and PCI merged).
	r, err := Probe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range r.GPUs {
		if g.Vendor == VendorNVIDIA {
			n++
		}
	}
	if n != len(smi) {
		t.Errorf("Probe lists %d NVIDIA GPUs, nvidia-smi %d: %+v", n, len(smi), r.GPUs)
	}
	o := DefaultOfferPolicy().Offer(r)
	t.Logf("offer: %s", o)
}

func diff(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}
