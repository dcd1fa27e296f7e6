package runtimes

import (
	"fmt"
	"strings"
)

// The builds a release offers, as `potluck engine install --backend` names
// them.
const (
	BackendCPU    = "cpu"
	BackendVulkan = "vulkan"
	BackendCUDA   = "cuda"  // NVIDIA, CUDA 12.4: driver 550 or later
	BackendMetal  = "metal" // Apple silicon
	BackendHIP    = "hip"   // AMD Radeon through ROCm's HIP (Windows)
)

// Backends lists the backend names in the order of preference when several
// builds of one version are installed.
var Backends = []string{BackendCUDA, BackendMetal, BackendHIP, BackendVulkan, BackendCPU}

// Platform is an operating system and architecture in Go's words.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// The CUDA version of the Windows CUDA archives Potluck uses; its runtime
// DLLs come in a second archive, cudart-….
const cudaRelease = "12.4"

// Assets names the release archives that make the build of version for p
// and backend, the main one first, as llama.cpp's release workflow
// (.github/workflows/release.yml) names them:
//
//	llama-v0.7.0-bin-win-vulkan-x64.zip        Windows (flat; the CPU backend is added to every zip)
//	llama-v0.7.0-bin-win-cuda-12.4-x64.zip     with cudart-llama-bin-win-cuda-12.4-x64.zip (no tag)
//	llama-v0.7.0-bin-ubuntu-vulkan-x64.tar.gz  Linux (one top folder, llama-v0.7.0/)
//	llama-v0.7.0-bin-macos-arm64.tar.gz        macOS (Metal on arm64)
func Assets(version string, p Platform, backend string) ([]string, error) {
	if names, ok := assetNames(version, p, backend); ok {
		return names, nil
	}
	if p.OS == "linux" && p.Arch == "amd64" && backend == BackendCUDA {
		return nil, fmt.Errorf("llama.cpp publishes no CUDA build for Linux: CUDA comes from Debian's packages (`potluck engine install --version %s --backend cuda`), or use --backend vulkan", VersionDebian)
	}
	return nil, fmt.Errorf("llama.cpp %s has no %s build for %s (it has: %s)", Tag(version), backend, p, strings.Join(PlatformBackends(p), ", "))
}

func assetNames(version string, p Platform, backend string) ([]string, bool) {
	prefix := "llama-" + Tag(version) + "-bin-"
	arch, ok := map[string]string{"amd64": "x64", "arm64": "arm64"}[p.Arch]
	if !ok {
		return nil, false
	}
	switch p.OS {
	case "windows":
		switch {
		case backend == BackendCPU:
			return []string{prefix + "win-cpu-" + arch + ".zip"}, true
		case arch != "x64":
		case backend == BackendVulkan:
			return []string{prefix + "win-vulkan-x64.zip"}, true
		case backend == BackendCUDA:
			return []string{prefix + "win-cuda-" + cudaRelease + "-x64.zip", "cudart-llama-bin-win-cuda-" + cudaRelease + "-x64.zip"}, true
		case backend == BackendHIP:
			return []string{prefix + "win-hip-radeon-x64.zip"}, true
		}
	case "darwin":
		switch {
		case arch == "arm64" && (backend == BackendMetal || backend == BackendCPU):
			return []string{prefix + "macos-arm64.tar.gz"}, true
		case arch == "x64" && backend == BackendCPU:
			return []string{prefix + "macos-x64.tar.gz"}, true
		}
	case "linux":
		switch backend {
		case BackendCPU:
			return []string{prefix + "ubuntu-" + arch + ".tar.gz"}, true
		case BackendVulkan:
			return []string{prefix + "ubuntu-vulkan-" + arch + ".tar.gz"}, true
		}
	}
	return nil, false
}

// PlatformBackends lists the backends the release archives offer for p.
func PlatformBackends(p Platform) []string {
	var out []string
	for _, b := range Backends {
		if _, ok := assetNames(DefaultVersion, p, b); ok {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}
