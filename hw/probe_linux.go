//go:build linux

package hw

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"

	"github.com/jaypipes/ghw"
)

// probeOS fills r from /proc and /sys (through ghw for CPU, memory and PCI).
// With full unset it only re-reads what changes at run time: MemAvailable
// and the memory in use on amdgpu devices already in r.GPUs.
func (p *Prober) probeOS(ctx context.Context, r *Report, full bool) error {
	if full {
		p.linuxStatic(r)
	}
	b, err := p.readFile(p.path("proc/meminfo"))
	if err != nil {
		return fmt.Errorf("reading system memory: %w", err)
	}
	total, avail, err := parseMeminfo(b)
	if err != nil {
		return err
	}
	if r.Memory.TotalBytes == 0 {
		r.Memory.TotalBytes = total
	}
	r.Memory.AvailableBytes = min(avail, r.Memory.TotalBytes)
	for i := range r.GPUs {
		g := &r.GPUs[i]
		if g.Vendor == VendorAMD && g.Driver == "amdgpu" && g.PCIAddress != "" {
			readAMDGPU(p.readFile, p.path("sys/bus/pci/devices", g.PCIAddress), g)
		}
	}
	return ctx.Err()
}

// linuxStatic reads what does not change while the machine runs: CPU,
// total memory and the PCI GPU list. Failures become notes.
func (p *Prober) linuxStatic(r *Report) {
	opts := []any{ghw.WithDisableWarnings(), ghw.WithDisableTools()}
	if p.Root != "" {
		opts = append(opts, ghw.WithChroot(p.Root))
	}
	if info, err := ghw.CPU(opts...); err != nil {
		p.log().Debug("hw: reading CPU info failed", "err", err)
		r.Notes = append(r.Notes, "CPU details unavailable: "+err.Error())
	} else {
		r.CPU = cpuFromGHW(info)
	}
	if r.CPU.LogicalCores == 0 && p.Root == "" {
		r.CPU.LogicalCores = runtime.NumCPU()
	}
	if mem, err := ghw.Memory(opts...); err != nil {
		p.log().Debug("hw: reading memory info failed", "err", err)
	} else if mem.TotalUsableBytes > 0 {
		r.Memory.TotalBytes = uint64(mem.TotalUsableBytes)
	}
	db, err := p.pciDB()
	if err != nil {
		p.log().Debug("hw: no PCI ID database", "err", err)
		r.Notes = append(r.Notes, "no PCI ID database (install the pci.ids or hwdata package): only NVIDIA GPUs with a driver are listed")
		return
	}
	info, err := ghw.PCI(append(opts, ghw.WithPCIDB(db), ghw.WithDisableTopology())...)
	if err != nil {
		p.log().Debug("hw: PCI scan failed", "err", err)
		r.Notes = append(r.Notes, "PCI scan failed: "+err.Error())
		return
	}
	r.GPUs = gpusFromPCI(info.Devices)
}

// path joins a /proc or /sys path under Root.
func (p *Prober) path(elem ...string) string {
	root := p.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(append([]string{root}, elem...)...)
}
