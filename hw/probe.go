package hw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jaypipes/pcidb"
)

// GPUReader reads GPUs from a vendor library that stays open between reads,
// so periodic refreshes do not pay for loading the library each time.
type GPUReader interface {
	GPUs(ctx context.Context) ([]GPU, error)
	Close() error
}

// noGPUs is the reader used when a vendor library is absent.
type noGPUs struct{}

func (noGPUs) GPUs(context.Context) ([]GPU, error) { return nil, nil }
func (noGPUs) Close() error                        { return nil }

var _ GPUReader = noGPUs{}

// Prober measures this machine. The zero value reads the real hardware;
// tests replace the fields to feed captured data. A Prober is safe for
// concurrent use once its fields are set.
type Prober struct {
	// Root is the filesystem root Linux reads /proc and /sys under (and ghw
	// is chrooted to); "" means "/". Tests point it at an unpacked ghw
	// snapshot.
	Root string
	// PCIDB names PCI vendors and products; nil loads the system's pci.ids
	// on first use and keeps it.
	PCIDB *pcidb.PCIDB
	// OpenNVIDIA opens the NVIDIA reader; nil means NVML, which is only
	// built on Linux with cgo. A missing driver is not an error: the
	// reader then reports no GPUs.
	OpenNVIDIA func(ctx context.Context, log *slog.Logger) (GPUReader, error)
	// ReadFile reads a file, already joined with Root; nil means os.ReadFile.
	ReadFile func(name string) ([]byte, error)
	// Command runs a program and returns its standard output (sysctl and
	// vm_stat on macOS); nil means os/exec.
	Command func(ctx context.Context, name string, args ...string) ([]byte, error)
	// Logger receives debug lines; nil means slog.Default().
	Logger *slog.Logger
	// Now stamps reports; nil means time.Now.
	Now func() time.Time

	dbMu  sync.Mutex
	db    *pcidb.PCIDB
	dbErr error
}

// Probe measures this machine with the real hardware.
func Probe(ctx context.Context) (Report, error) {
	return new(Prober).Probe(ctx)
}

// Probe measures CPU, memory and GPUs. A missing GPU driver or PCI database
// is not an error (it becomes a Note); failing to read system memory is.
func (p *Prober) Probe(ctx context.Context) (Report, error) {
	nv := p.openNVIDIA(ctx)
	defer nv.Close()
	r, _, err := p.probe(ctx, nv)
	return r, err
}

// probe is Probe with an open NVIDIA reader. It also returns the GPUs the OS
// reported (PCI, sysfs, WMI, sysctl) before merging, which refresh needs.
func (p *Prober) probe(ctx context.Context, nv GPUReader) (Report, []GPU, error) {
	if err := ctx.Err(); err != nil {
		return Report{}, nil, err
	}
	r := Report{OS: runtime.GOOS, Arch: runtime.GOARCH}
	if err := p.probeOS(ctx, &r, true); err != nil {
		return Report{}, nil, fmt.Errorf("hw: probe: %w", err)
	}
	osGPUs := r.GPUs
	if err := p.readNVIDIA(ctx, nv, &r); err != nil {
		r.Notes = append(r.Notes, "NVIDIA GPUs could not be read: "+err.Error())
	}
	r.ProbedAt = p.now()
	return r, osGPUs, nil
}

// refresh re-reads only what changes while the machine runs (available
// memory, GPU memory in use) on top of prev, without another PCI scan.
// osGPUs are the OS-reported GPUs of the last full probe; it returns them
// refreshed for the next call.
func (p *Prober) refresh(ctx context.Context, prev Report, osGPUs []GPU, nv GPUReader) (Report, []GPU, error) {
	r := prev
	r.GPUs = append([]GPU(nil), osGPUs...)
	if err := p.probeOS(ctx, &r, false); err != nil {
		return prev, osGPUs, fmt.Errorf("hw: refresh: %w", err)
	}
	osGPUs = r.GPUs
	_ = p.readNVIDIA(ctx, nv, &r) // logged; the last full probe's notes stand
	r.ProbedAt = p.now()
	return r, osGPUs, nil
}

// readNVIDIA merges the NVIDIA reader's GPUs into r.GPUs.
func (p *Prober) readNVIDIA(ctx context.Context, nv GPUReader, r *Report) error {
	gpus, err := nv.GPUs(ctx)
	if err != nil {
		p.log().Debug("hw: reading NVIDIA GPUs failed", "err", err)
	}
	r.GPUs = mergeGPUs(gpus, r.GPUs)
	return err
}

// mergeGPUs puts the NVML GPUs first and drops the PCI/OS entries that
// describe the same device: same PCI address, or, where NVML gave no
// address, any NVIDIA entry at all.
func mergeGPUs(nvml, other []GPU) []GPU {
	out := make([]GPU, 0, len(nvml)+len(other))
	out = append(out, nvml...)
	seen := make(map[string]bool, len(nvml))
	anyUnaddressed := false
	for _, g := range nvml {
		if a := normPCIAddress(g.PCIAddress); a != "" {
			seen[a] = true
		} else {
			anyUnaddressed = true
		}
	}
	for _, g := range other {
		if seen[normPCIAddress(g.PCIAddress)] {
			continue
		}
		if anyUnaddressed && g.Vendor == VendorNVIDIA {
			continue
		}
		out = append(out, g)
	}
	return out
}

// normPCIAddress turns NVML's "00000000:01:00.0" and sysfs' "0000:01:00.0"
// into the same lower-case form with a four-digit domain.
func normPCIAddress(a string) string {
	a = strings.ToLower(strings.TrimSpace(a))
	if a == "" {
		return ""
	}
	dom, rest, ok := strings.Cut(a, ":")
	if !ok || strings.Count(rest, ":") != 1 {
		return a
	}
	dom = strings.TrimLeft(dom, "0")
	if len(dom) < 4 {
		dom = strings.Repeat("0", 4-len(dom)) + dom
	}
	return dom + ":" + rest
}

func (p *Prober) openNVIDIA(ctx context.Context) GPUReader {
	open := p.OpenNVIDIA
	if open == nil {
		open = openNVML
	}
	r, err := open(ctx, p.log())
	if err != nil || r == nil {
		p.log().Debug("hw: no NVIDIA reader", "err", err)
		return noGPUs{}
	}
	return r
}

// pciDB returns the PCI ID database, loading it once.
func (p *Prober) pciDB() (*pcidb.PCIDB, error) {
	if p.PCIDB != nil {
		return p.PCIDB, nil
	}
	p.dbMu.Lock()
	defer p.dbMu.Unlock()
	if p.db == nil && p.dbErr == nil {
		p.db, p.dbErr = pcidb.New()
	}
	return p.db, p.dbErr
}

func (p *Prober) readFile(name string) ([]byte, error) {
	if p.ReadFile != nil {
		return p.ReadFile(name)
	}
	return os.ReadFile(name)
}

func (p *Prober) command(ctx context.Context, name string, args ...string) ([]byte, error) {
	if p.Command != nil {
		return p.Command(ctx, name, args...)
	}
	out, err := exec.CommandContext(ctx, name, args...).Output()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && len(out) > 0 {
		// sysctl exits non-zero when one of several keys is unknown
		// (hw.optional.arm64 on Intel Macs) but still prints the rest.
		err = nil
	}
	return out, err
}

func (p *Prober) log() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}

func (p *Prober) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}
