//go:build windows

package hw

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"github.com/jaypipes/ghw"
)

// probeOS fills r from WMI (through ghw) and GlobalMemoryStatusEx. With full
// unset only available memory is re-read.
func (p *Prober) probeOS(ctx context.Context, r *Report, full bool) error {
	if full {
		opts := []any{ghw.WithDisableWarnings()}
		if info, err := ghw.CPU(opts...); err != nil {
			p.log().Debug("hw: reading CPU info failed", "err", err)
			r.CPU.LogicalCores = runtime.NumCPU()
		} else {
			r.CPU = cpuFromGHW(info)
		}
		if mem, err := ghw.Memory(opts...); err == nil && mem.TotalUsableBytes > 0 {
			r.Memory.TotalBytes = uint64(mem.TotalUsableBytes)
		}
		if info, err := ghw.GPU(opts...); err != nil {
			p.log().Debug("hw: listing GPUs failed", "err", err)
			r.GPUListError = wmiError(err)
			r.Notes = append(r.Notes, "Windows did not list the GPUs: "+r.GPUListError)
		} else {
			r.GPUs = gpusFromCards(info.GraphicsCards)
		}
	}
	total, avail, err := globalMemoryStatus()
	if err != nil {
		return fmt.Errorf("reading system memory: %w", err)
	}
	if r.Memory.TotalBytes == 0 {
		r.Memory.TotalBytes = total
	}
	r.Memory.AvailableBytes = min(avail, r.Memory.TotalBytes)
	return ctx.Err()
}

// memoryStatusEx is MEMORYSTATUSEX from sysinfoapi.h.
type memoryStatusEx struct {
	Length               uint32
	MemoryLoad           uint32
	TotalPhys            uint64
	AvailPhys            uint64
	TotalPageFile        uint64
	AvailPageFile        uint64
	TotalVirtual         uint64
	AvailVirtual         uint64
	AvailExtendedVirtual uint64
}

var procGlobalMemoryStatusEx = syscall.NewLazyDLL("kernel32.dll").NewProc("GlobalMemoryStatusEx")

func globalMemoryStatus() (total, avail uint64, err error) {
	var st memoryStatusEx
	st.Length = uint32(unsafe.Sizeof(st))
	ok, _, callErr := procGlobalMemoryStatusEx.Call(uintptr(unsafe.Pointer(&st)))
	if ok == 0 {
		return 0, 0, fmt.Errorf("GlobalMemoryStatusEx: %w", callErr)
	}
	return st.TotalPhys, st.AvailPhys, nil
}

// wmiError says what a failed WMI query was, in fewer words than WMI's own
// ("error 2147614729 (FormatMessage failed with: …)" is 0x80020009).
func wmiError(err error) string {
	msg := err.Error()
	var code uint32
	if _, scanErr := fmt.Sscanf(msg, "error %d", &code); scanErr == nil && strings.Contains(msg, "FormatMessage failed") {
		return fmt.Sprintf("WMI error 0x%08X", code)
	}
	return "WMI: " + msg
}
