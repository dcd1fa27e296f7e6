//go:build !windows && (!linux || !cgo)

package hw

import (
	"context"
	"log/slog"
)

// openNVML reports no NVIDIA GPUs: NVML is only built on Linux with cgo.
// Other GPUs, NVIDIA ones included, still come from the OS probe.
func openNVML(ctx context.Context, log *slog.Logger) (GPUReader, error) {
	log.Debug("hw: NVML not built into this binary (needs Linux and cgo)")
	return noGPUs{}, nil
}
