package app

import (
	"testing"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/hw"
)

// Where Windows' WMI fails, the GPUs a person sees come from llama.cpp's
// own device list; a report that lists GPUs keeps its own.
func TestWithEngineGPUs(t *testing.T) {
	devs := []engine.Device{
		{Name: "Vulkan0", Backend: "Vulkan", Description: "AMD Radeon RX 7900 XTX", TotalBytes: 24 << 30, FreeBytes: 23 << 30},
		{Name: "CUDA0", Backend: "CUDA", Description: "NVIDIA GeForce RTX 4090", TotalBytes: 24 << 30},
		{Name: "CPU", Backend: "CPU", Description: "AMD Ryzen 9"},
		{Name: "RPC0", Backend: "RPC", Description: "127.0.0.1:5000", TotalBytes: 8 << 30},
	}
	r := withEngineGPUs(hw.Report{GPUListError: "WMI error 0x80020009"}, devs)
	if len(r.GPUs) != 2 || r.GPUs[0].Vendor != hw.VendorAMD || r.GPUs[1].Vendor != hw.VendorNVIDIA ||
		r.GPUs[0].VRAMTotal != 24<<30 || !r.GPUs[0].VRAMKnown || r.GPUs[1].Backend != "cuda" {
		t.Errorf("GPUs from llama.cpp: %+v", r.GPUs)
	}
	own := hw.Report{GPUs: []hw.GPU{{Name: "from WMI"}}, GPUListError: ""}
	if got := withEngineGPUs(own, devs); len(got.GPUs) != 1 || got.GPUs[0].Name != "from WMI" {
		t.Errorf("a report with GPUs changed: %+v", got.GPUs)
	}
	if got := withEngineGPUs(hw.Report{}, devs); len(got.GPUs) != 0 {
		t.Errorf("a machine the OS says has no GPU got some: %+v", got.GPUs)
	}
}
