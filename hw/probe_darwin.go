//go:build darwin

package hw

import "context"

// probeOS fills r from sysctl and vm_stat; see darwinProbe.
func (p *Prober) probeOS(ctx context.Context, r *Report, full bool) error {
	return darwinProbe(ctx, p.command, r, full)
}
