package hw

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// macOS is probed with two programs whose output is parsed here, on every
// OS, so that captured output from Macs is tested everywhere.

// Absolute paths: an app started by launchd may have a minimal PATH.
const (
	darwinSysctl = "/usr/sbin/sysctl"
	darwinVMStat = "/usr/bin/vm_stat"
)

// darwinSysctlKeys are read with one `sysctl` call. hw.optional.arm64 is 1
// on Apple Silicon and absent on Intel Macs.
var darwinSysctlKeys = []string{
	"machdep.cpu.brand_string",
	"hw.physicalcpu",
	"hw.logicalcpu",
	"hw.memsize",
	"hw.optional.arm64",
}

// darwinProbe fills r on macOS from sysctl and vm_stat, run through cmd.
// With full unset only available memory (and the unified GPU's share of it)
// is re-read.
func darwinProbe(ctx context.Context, cmd func(context.Context, string, ...string) ([]byte, error), r *Report, full bool) error {
	if full {
		out, err := cmd(ctx, darwinSysctl, darwinSysctlKeys...)
		if err != nil {
			return fmt.Errorf("running sysctl: %w", err)
		}
		if err := fillFromSysctl(parseSysctl(out), r); err != nil {
			return err
		}
	}
	out, err := cmd(ctx, darwinVMStat)
	if err != nil {
		return fmt.Errorf("running vm_stat: %w", err)
	}
	avail, err := parseVMStat(out)
	if err != nil {
		return err
	}
	r.Memory.AvailableBytes = min(avail, r.Memory.TotalBytes)
	for i := range r.GPUs {
		if g := &r.GPUs[i]; g.UnifiedMemory {
			g.VRAMFree = r.Memory.AvailableBytes
			g.VRAMUsed = g.VRAMTotal - g.VRAMFree
		}
	}
	return nil
}

// parseSysctl reads `sysctl key...` output: one "key: value" per line.
func parseSysctl(out []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// fillFromSysctl sets CPU, total memory and, on Apple Silicon, the GPU that
// shares system memory.
func fillFromSysctl(kv map[string]string, r *Report) error {
	memsize, err := strconv.ParseUint(kv["hw.memsize"], 10, 64)
	if err != nil || memsize == 0 {
		return fmt.Errorf("sysctl hw.memsize: unreadable value %q", kv["hw.memsize"])
	}
	r.Memory.TotalBytes = memsize
	r.CPU.Model = kv["machdep.cpu.brand_string"]
	r.CPU.PhysicalCores, _ = strconv.Atoi(kv["hw.physicalcpu"])
	r.CPU.LogicalCores, _ = strconv.Atoi(kv["hw.logicalcpu"])
	if kv["hw.optional.arm64"] != "1" {
		r.Notes = append(r.Notes, "GPUs of Intel Macs are not probed")
		return nil
	}
	name := r.CPU.Model
	if name == "" {
		name = "Apple Silicon"
	}
	r.GPUs = []GPU{{
		Vendor:        VendorApple,
		Name:          name + " GPU",
		Backend:       BackendMetal,
		VRAMTotal:     memsize,
		VRAMKnown:     true,
		Utilization:   Unknown,
		TemperatureC:  Unknown,
		UnifiedMemory: true,
	}}
	return nil
}

var (
	vmStatPageSize = regexp.MustCompile(`page size of (\d+) bytes`)
	vmStatLine     = regexp.MustCompile(`^(Pages [a-z ]+):\s+(\d+)\.?$`)
)

// parseVMStat computes available memory from vm_stat output the way
// psutil does: free plus inactive pages ("Pages free" already excludes
// speculative pages), times the page size from the header.
func parseVMStat(out []byte) (uint64, error) {
	m := vmStatPageSize.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("vm_stat: no page size in output")
	}
	pageSize, err := strconv.ParseUint(string(m[1]), 10, 64)
	if err != nil || pageSize == 0 {
		return 0, fmt.Errorf("vm_stat: bad page size %q", m[1])
	}
	pages := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if f := vmStatLine.FindStringSubmatch(strings.TrimSpace(sc.Text())); f != nil {
			pages[f[1]], _ = strconv.ParseUint(f[2], 10, 64)
		}
	}
	free, ok1 := pages["Pages free"]
	inactive, ok2 := pages["Pages inactive"]
	if !ok1 || !ok2 {
		return 0, fmt.Errorf("vm_stat: missing free or inactive page counts")
	}
	return (free + inactive) * pageSize, nil
}
