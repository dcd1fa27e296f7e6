// Package hw owns what this machine can offer to a Potluck pool: it measures
// the CPU, system memory and GPUs (VRAM through NVML for NVIDIA, PCI and sysfs
// for the others, unified memory on Apple Silicon), turns a measurement into
// an offer with OfferPolicy, prints it for people with WriteTable and keeps it
// fresh with Monitor. The memory bandwidth, slow to measure, is measured once
// per machine and kept by BandwidthCache.
//
// Every piece of hardware access sits behind a field of Prober, so the parsing
// and merging logic is tested on captured data rather than on the machine that
// runs the tests.
package hw

import "time"

// Report is one measurement of this machine. It is published in the mesh's
// node info and in /api/status, so its JSON form is part of the protocol.
type Report struct {
	CPU    CPU    `json:"cpu"`
	Memory Memory `json:"memory"`
	// GPUs lists every GPU found, NVIDIA ones first. Never nil after Probe.
	GPUs     []GPU     `json:"gpus"`
	OS       string    `json:"os"`
	Arch     string    `json:"arch"`
	ProbedAt time.Time `json:"probed_at"`
	// Notes are things a person may want to know about the measurement
	// itself, such as "no PCI ID database, GPU names unknown".
	Notes []string `json:"notes,omitempty"`
	// GPUListError is why the OS could not list the GPUs (WMI on
	// Windows), when it could not: GPUs then come only from NVML, and
	// later from llama.cpp's own device list.
	GPUListError string `json:"gpu_list_error,omitempty"`
}

// CPU summarises the processors.
type CPU struct {
	Model         string `json:"model"`
	PhysicalCores int    `json:"physical_cores"`
	LogicalCores  int    `json:"logical_cores"`
}

// Memory is system memory. AvailableBytes is what the kernel says can be
// allocated without swapping (MemAvailable on Linux).
type Memory struct {
	TotalBytes     uint64 `json:"total_bytes"`
	AvailableBytes uint64 `json:"available_bytes"`
	// BandwidthBytesPerSec is the measured rate of reading memory with
	// every core (MeasureMemoryBandwidth, kept by BandwidthCache); 0 when
	// not measured yet.
	BandwidthBytesPerSec float64 `json:"bandwidth_bytes_per_sec,omitempty"`
}

// Backends name the llama.cpp backend family a GPU can most likely be used
// with, judged from what was detected (vendor, driver, NVML).
const (
	BackendCUDA   = "cuda"
	BackendMetal  = "metal"
	BackendVulkan = "vulkan"
	BackendNone   = "none"
)

// Vendor names used in GPU.Vendor.
const (
	VendorNVIDIA = "NVIDIA"
	VendorAMD    = "AMD"
	VendorIntel  = "Intel"
	VendorApple  = "Apple"
)

// Unknown is the value of GPU.Utilization and GPU.TemperatureC when the
// driver does not report them.
const Unknown = -1

// GPU is one graphics or compute device.
type GPU struct {
	Vendor string `json:"vendor"`
	Name   string `json:"name"`
	UUID   string `json:"uuid,omitempty"`
	// PCIAddress is domain:bus:device.function in lower case, e.g.
	// "0000:01:00.0"; empty where the OS does not expose it.
	PCIAddress string `json:"pci_address,omitempty"`
	Backend    string `json:"backend"`
	// VRAM figures are bytes and only meaningful when VRAMKnown is set.
	VRAMTotal uint64 `json:"vram_total"`
	VRAMFree  uint64 `json:"vram_free"`
	VRAMUsed  uint64 `json:"vram_used"`
	VRAMKnown bool   `json:"vram_known"`
	// Utilization is percent busy, TemperatureC degrees Celsius; both are
	// Unknown (-1) when not reported.
	Utilization  int `json:"utilization"`
	TemperatureC int `json:"temperature_c"`
	// Driver is the driver version (NVML, Windows) or the kernel driver
	// bound to the device (Linux sysfs).
	Driver      string `json:"driver,omitempty"`
	CUDAVersion string `json:"cuda_version,omitempty"`
	// UnifiedMemory is set when the GPU shares system memory (Apple
	// Silicon): its VRAM figures are then system memory, not extra memory.
	UnifiedMemory bool `json:"unified_memory"`
	// BandwidthBytesPerSec is the peak memory bandwidth, from NVML's
	// memory clock and bus width; 0 when unknown.
	BandwidthBytesPerSec float64 `json:"bandwidth_bytes_per_sec,omitempty"`
}
