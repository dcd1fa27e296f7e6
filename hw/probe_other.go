//go:build !linux && !darwin && !windows

package hw

import (
	"context"
	"runtime"
)

// probeOS knows only the CPU count on systems without a dedicated probe;
// memory is reported as zero, so nothing is offered.
func (p *Prober) probeOS(ctx context.Context, r *Report, full bool) error {
	if full {
		r.CPU.LogicalCores = runtime.NumCPU()
		r.Notes = append(r.Notes, "memory and GPUs are not probed on "+runtime.GOOS)
	}
	return ctx.Err()
}
