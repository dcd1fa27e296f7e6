package runtimes

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/potluck-gpu/potluck/hw"
)

// Choice is the build chosen for a machine, and why, in words for `potluck
// engine status`.
type Choice struct {
	Backend string `json:"backend"`
	Why     string `json:"why"`
}

// ChooseFor is ChooseBackend for a hardware report. Where the OS could not
// list the GPUs and NVML knows none, it takes the Vulkan build: it carries
// the CPU backend too, and finds any GPU that has a Vulkan driver, which
// llama.cpp's device list then shows.
func ChooseFor(p Platform, r *hw.Report) Choice {
	if r == nil {
		return ChooseBackend(p, nil)
	}
	if r.GPUListError != "" && len(r.GPUs) == 0 && p.OS != "darwin" {
		if _, ok := assetNames(DefaultVersion, p, BackendVulkan); ok {
			return Choice{BackendVulkan, "the GPUs could not be listed (" + r.GPUListError + "): the Vulkan build, which finds any GPU with a Vulkan driver and has the CPU backend too"}
		}
	}
	return ChooseBackend(p, r.GPUs)
}

// minCUDADriver is the oldest NVIDIA driver that runs CUDA 12.4, the CUDA of
// the release archives and of Debian's packages.
const minCUDADriver = 550

// ChooseBackend picks the build for a machine from its GPUs: CUDA for an
// NVIDIA GPU whose driver is 550 or later, Vulkan for any other GPU (and for
// NVIDIA with an older driver), Metal on Apple silicon, otherwise the CPU
// build. A backend the platform's archives lack falls back to one they have.
func ChooseBackend(p Platform, gpus []hw.GPU) Choice {
	if p.OS == "darwin" {
		if p.Arch == "arm64" {
			return Choice{BackendMetal, "Apple silicon: the Metal build"}
		}
		return Choice{BackendCPU, "an Intel Mac: llama.cpp's macOS x64 build has no GPU backend"}
	}
	c := Choice{BackendCPU, "no GPU found: the CPU build"}
	var oldNVIDIA string
	for _, g := range gpus {
		if g.Vendor == hw.VendorApple {
			continue
		}
		name := strings.TrimSpace(g.Vendor + " " + strings.TrimPrefix(g.Name, g.Vendor+" "))
		if g.Vendor == hw.VendorNVIDIA {
			major, known := NVIDIADriverMajor(g)
			switch {
			case known && major >= minCUDADriver:
				c = Choice{BackendCUDA, fmt.Sprintf("%s with driver %s: CUDA %s (needs driver %d or later)", name, g.Driver, cudaRelease, minCUDADriver)}
			case known:
				oldNVIDIA = fmt.Sprintf("%s has driver %s, older than the %d that CUDA %s needs: Vulkan (update the driver to use CUDA)", name, g.Driver, minCUDADriver, cudaRelease)
			default:
				oldNVIDIA = fmt.Sprintf("%s, driver version unknown: Vulkan (CUDA needs driver %d or later)", name, minCUDADriver)
			}
			if c.Backend == BackendCUDA {
				break
			}
		}
		if c.Backend == BackendCPU {
			c = Choice{BackendVulkan, name + ": Vulkan"}
		}
	}
	if c.Backend == BackendVulkan && oldNVIDIA != "" {
		c.Why = oldNVIDIA
	}
	if c.Backend == BackendCUDA && p.OS == "linux" && p.Arch != "amd64" {
		c = Choice{BackendVulkan, c.Why + "; there is no CUDA build for " + p.String() + ": Vulkan"}
	}
	if _, ok := assetNames(DefaultVersion, p, c.Backend); !ok && !(c.Backend == BackendCUDA && p.OS == "linux") {
		c = Choice{BackendCPU, c.Why + "; llama.cpp has no such build for " + p.String() + ": the CPU build"}
	}
	return c
}

// NVIDIADriverMajor is the major version of an NVIDIA GPU's driver: "560"
// of NVML's "560.35.03", and of Windows' own numbering, "32.0.15.6094"
// (whose last five digits are 560.94).
func NVIDIADriverMajor(g hw.GPU) (int, bool) {
	if g.CUDAVersion != "" && g.Driver == "" {
		var maj, min int
		if _, err := fmt.Sscanf(g.CUDAVersion, "%d.%d", &maj, &min); err == nil && maj*100+min >= 1204 {
			return minCUDADriver, true
		}
	}
	parts := strings.Split(strings.TrimSpace(g.Driver), ".")
	if len(parts) == 4 {
		digits := parts[2] + parts[3]
		if len(digits) >= 5 {
			if n, err := strconv.Atoi(digits[len(digits)-5 : len(digits)-2]); err == nil {
				return n, true
			}
		}
		return 0, false
	}
	if n, err := strconv.Atoi(parts[0]); err == nil && n > 0 {
		return n, true
	}
	return 0, false
}
