package runtimes

import (
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/hw"
)

func TestChooseBackend(t *testing.T) {
	nvidia := func(driver string) hw.GPU {
		return hw.GPU{Vendor: hw.VendorNVIDIA, Name: "NVIDIA GeForce RTX 4090", Driver: driver}
	}
	amd := hw.GPU{Vendor: hw.VendorAMD, Name: "AMD Radeon RX 7900 XTX"}
	intel := hw.GPU{Vendor: hw.VendorIntel, Name: "Intel Arc A770"}
	linux, windows := Platform{"linux", "amd64"}, Platform{"windows", "amd64"}
	tests := []struct {
		name   string
		p      Platform
		gpus   []hw.GPU
		want   string
		whyHas string
	}{
		{"linux, no GPU", linux, nil, BackendCPU, "no GPU"},
		{"windows, no GPU", windows, nil, BackendCPU, "no GPU"},
		{"linux, NVIDIA 560", linux, []hw.GPU{nvidia("560.35.03")}, BackendCUDA, "driver 560.35.03"},
		{"linux, NVIDIA 550 exactly", linux, []hw.GPU{nvidia("550.54.14")}, BackendCUDA, "CUDA 12.4"},
		{"linux, NVIDIA 535", linux, []hw.GPU{nvidia("535.183.01")}, BackendVulkan, "older than the 550"},
		{"windows, NVIDIA 560 in Windows' numbering", windows, []hw.GPU{nvidia("32.0.15.6094")}, BackendCUDA, "32.0.15.6094"},
		{"windows, NVIDIA 537 in Windows' numbering", windows, []hw.GPU{nvidia("31.0.15.3742")}, BackendVulkan, "older"},
		{"windows, NVIDIA, driver unknown", windows, []hw.GPU{nvidia("")}, BackendVulkan, "driver version unknown"},
		{"windows, NVIDIA known only by CUDA version", windows, []hw.GPU{{Vendor: hw.VendorNVIDIA, Name: "RTX 3060", CUDAVersion: "12.6"}}, BackendCUDA, "CUDA"},
		{"linux, AMD", linux, []hw.GPU{amd}, BackendVulkan, "AMD Radeon RX 7900 XTX: Vulkan"},
		{"windows, Intel", windows, []hw.GPU{intel}, BackendVulkan, "Intel Arc A770"},
		{"windows, AMD and NVIDIA 560", windows, []hw.GPU{amd, nvidia("560.94")}, BackendCUDA, "NVIDIA"},
		{"windows, NVIDIA 560 and AMD", windows, []hw.GPU{nvidia("560.94"), amd}, BackendCUDA, "NVIDIA"},
		{"windows arm64, NVIDIA 560: only a CPU build", Platform{"windows", "arm64"}, []hw.GPU{nvidia("560.94")}, BackendCPU, "no such build"},
		{"linux arm64, NVIDIA 560: no CUDA there", Platform{"linux", "arm64"}, []hw.GPU{nvidia("560.94")}, BackendVulkan, "no CUDA build"},
		{"macOS arm64", Platform{"darwin", "arm64"}, []hw.GPU{{Vendor: hw.VendorApple, Name: "Apple M3"}}, BackendMetal, "Apple silicon"},
		{"macOS x64", Platform{"darwin", "amd64"}, nil, BackendCPU, "Intel Mac"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ChooseBackend(tt.p, tt.gpus)
			if c.Backend != tt.want || !strings.Contains(c.Why, tt.whyHas) {
				t.Errorf("ChooseBackend = %q (%s), want %q with %q in the reason", c.Backend, c.Why, tt.want, tt.whyHas)
			}
			if _, err := Assets(DefaultVersion, tt.p, c.Backend); err != nil && !(c.Backend == BackendCUDA && tt.p.OS == "linux") {
				t.Errorf("chose %s, which %s has no archive for: %v", c.Backend, tt.p, err)
			}
		})
	}
}

func TestNVIDIADriverMajor(t *testing.T) {
	for driver, want := range map[string]int{"560.35.03": 560, "550.54": 550, "32.0.15.6094": 560, "31.0.15.5222": 552, "27.21.14.5671": 456} {
		if got, ok := NVIDIADriverMajor(hw.GPU{Driver: driver}); !ok || got != want {
			t.Errorf("NVIDIADriverMajor(%q) = %d, %v; want %d", driver, got, ok, want)
		}
	}
	if _, ok := NVIDIADriverMajor(hw.GPU{Driver: "nvidia"}); ok {
		t.Error("a kernel driver's name is not a version")
	}
}

func TestChooseForAFailedGPUList(t *testing.T) {
	windows := Platform{"windows", "amd64"}
	r := &hw.Report{GPUListError: "WMI error 0x80020009"}
	if c := ChooseFor(windows, r); c.Backend != BackendVulkan || !strings.Contains(c.Why, "0x80020009") {
		t.Errorf("WMI failed, no NVML: %+v, want Vulkan saying why", c)
	}
	r.GPUs = []hw.GPU{{Vendor: hw.VendorNVIDIA, Name: "NVIDIA GeForce RTX 4090", Driver: "560.94"}}
	if c := ChooseFor(windows, r); c.Backend != BackendCUDA {
		t.Errorf("WMI failed, NVML answered: %+v, want CUDA", c)
	}
	if c := ChooseFor(windows, &hw.Report{}); c.Backend != BackendCPU {
		t.Errorf("no GPU, and WMI said so: %+v", c)
	}
}
