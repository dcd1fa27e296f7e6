package engine

import (
	"strings"
	"time"
)

// The speed model predicts how many tokens a second a plan decodes.
//
// Decoding one token reads every weight of the model once, so a device's
// part of the time is the bytes of the layers it holds over its memory
// bandwidth, plus the fixed cost of launching work: a little per layer and a
// little per token. A token also crosses the network to every worker that
// holds layers and back: llama.cpp 0.7.0 waits for one reply from each
// worker per token, on top of a fixed cost per worker. The time per token
// is the sum of all of these, since the devices of a split work one after
// another.

// Speed is how fast one device decodes.
type Speed struct {
	// BytesPerSecond is the rate at which the device reads weights.
	BytesPerSecond float64 `json:"bytes_per_second"`
	// LayerSeconds is the fixed cost of one layer for one token.
	LayerSeconds float64 `json:"layer_seconds"`
	// BaseSeconds is the fixed cost of one token on the device.
	BaseSeconds float64 `json:"base_seconds"`
	// Source says where BytesPerSecond comes from: "measured" (host
	// memory), "nvml" (memory clock × bus width) or "default".
	Source string `json:"source"`
}

// Known reports whether the speed says anything.
func (s Speed) Known() bool { return s.BytesPerSecond > 0 }

// layerCost is the time one layer of layerBytes takes on the device.
func (s Speed) layerCost(layerBytes float64) float64 {
	if s.BytesPerSecond <= 0 {
		return layerBytes/defaultHostBandwidth + s.LayerSeconds
	}
	return layerBytes/s.BytesPerSecond + s.LayerSeconds
}

// The constants of the model: the CPU backend's fixed costs, and the cost of
// one RPC worker per token, rpcSeconds plus rpcRoundTrips times the round trip
// to it. The CPU and RPC ones are fitted on this project's bench (see
// bench/README.md; llama.cpp 0.7.0, RPC 8.0.0, 1 thread, the 2-core build
// machine): the CPU's and the round trips (a token waits for one reply from
// each worker, and a tenth of the time for a second) by `go run ./bench -only
// calibrate`, rpcSeconds by the shard section, a worker reached through
// Potluck's tunnel on loopback: about 2,100 µs a worker beyond its devices,
// less 1.1 times the head's pings to it (0.4-1.6 ms there). llama.cpp's own
// part of it measured 680-1,030 µs in the last fit, 320-420 µs in the first.
const (
	// defaultHostBandwidth stands in for a host whose bandwidth was not
	// measured: a dual-channel DDR4 desktop.
	defaultHostBandwidth = 20e9

	cpuLayerSeconds = 38e-6
	cpuBaseSeconds  = 35e-6

	gpuLayerSeconds = 15e-6
	gpuBaseSeconds  = 150e-6
	// gpuEfficiency is the share of a GPU's peak memory bandwidth decoding
	// reaches.
	gpuEfficiency = 0.75
	// defaultGPUBandwidth stands in for a GPU whose bandwidth nothing
	// reports (a Vulkan device without NVML): a mid-range discrete card.
	defaultGPUBandwidth = 250e9

	// softwareLayerSeconds is the cost of a layer on a Vulkan device that
	// runs on the CPU (Mesa's lavapipe): every kernel is run by the CPU
	// through the Vulkan driver, at a few milliseconds a layer (measured:
	// Mesa 22.3 decodes stories260K at 20-28 tok/s, Mesa 26.2 at 72).
	softwareLayerSeconds = 5e-3

	rpcSeconds    = 1200e-6
	rpcRoundTrips = 1.1

	// unmeasuredRTT is the round trip taken for a worker the head has not
	// pinged yet: a LAN's, as the head measures it through the mesh
	// (0.3-1.3 ms between idle processes on one machine).
	unmeasuredRTT = time.Millisecond
)

// CPUSpeed is the speed of the CPU backend on a host whose memory reads at
// hostBytesPerSecond (0: unknown, a default is assumed).
func CPUSpeed(hostBytesPerSecond float64) Speed {
	s := Speed{BytesPerSecond: hostBytesPerSecond, LayerSeconds: cpuLayerSeconds, BaseSeconds: cpuBaseSeconds, Source: "measured"}
	if hostBytesPerSecond <= 0 {
		s.BytesPerSecond, s.Source = defaultHostBandwidth, "default"
	}
	return s
}

// GPUSpeed is the speed of a GPU whose memory peaks at peakBytesPerSecond
// (0: unknown, a default is assumed), as NVML reports it.
func GPUSpeed(peakBytesPerSecond float64) Speed {
	s := Speed{BytesPerSecond: peakBytesPerSecond * gpuEfficiency, LayerSeconds: gpuLayerSeconds, BaseSeconds: gpuBaseSeconds, Source: "nvml"}
	if peakBytesPerSecond <= 0 {
		s.BytesPerSecond, s.Source = defaultGPUBandwidth*gpuEfficiency, "default"
	}
	return s
}

// DeviceSpeed is the model's speed for a device llama.cpp lists, when
// nothing better is known: the CPU at hostBytesPerSecond, a software Vulkan
// device (lavapipe, SwiftShader) as the CPU running every kernel the slow
// way, and any other GPU at a default bandwidth.
func DeviceSpeed(d Device, hostBytesPerSecond float64) Speed {
	switch {
	case d.Backend == "CPU":
		return CPUSpeed(hostBytesPerSecond)
	case IsSoftwareDevice(d):
		s := CPUSpeed(hostBytesPerSecond)
		s.BytesPerSecond /= 2
		s.LayerSeconds = softwareLayerSeconds
		return s
	}
	return GPUSpeed(0)
}

// IsSoftwareDevice says whether a GPU device is really the CPU: Mesa's
// lavapipe (llvmpipe) or Google's SwiftShader. ggml hides them unless
// GGML_VK_VISIBLE_DEVICES asks for them; tests do, users never should.
func IsSoftwareDevice(d Device) bool {
	desc := strings.ToLower(d.Description)
	return strings.Contains(desc, "llvmpipe") || strings.Contains(desc, "lavapipe") || strings.Contains(desc, "swiftshader")
}

// hopSeconds is what a worker adds to every token, rtt away.
func hopSeconds(rtt time.Duration) float64 {
	if rtt <= 0 {
		rtt = unmeasuredRTT
	}
	return rpcSeconds + rpcRoundTrips*rtt.Seconds()
}
