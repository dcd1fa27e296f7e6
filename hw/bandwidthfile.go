package hw

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/potluck-gpu/potluck/internal/atomicfile"
)

// BandwidthFile is the name of BandwidthCache's file in Potluck's cache
// directory.
const BandwidthFile = "bandwidth.json"

// Machine is what a memory bandwidth figure holds for: the same CPU, the
// same number of cores and the same memory. Another CPU, or memory added
// or taken out, measures again.
type Machine struct {
	CPU   string `json:"cpu"`
	Cores int    `json:"cores"`
	// RAMGiB is the total memory, rounded to the nearest GiB: a kernel
	// that reserves a few MiB more after an update is the same machine,
	// a RAM upgrade is not.
	RAMGiB uint64 `json:"ram_gib"`
}

// MachineOf is the machine r describes.
func MachineOf(r Report) Machine {
	return Machine{CPU: r.CPU.Model, Cores: r.CPU.LogicalCores, RAMGiB: (r.Memory.TotalBytes + GiB/2) / GiB}
}

// BandwidthCache keeps this machine's memory bandwidth in a file, so that
// it is measured once per machine instead of at every start: measuring
// takes most of a second of every core and a quarter of a GiB.
type BandwidthCache struct {
	// Path is the file; empty: nothing is kept, and every Learn measures.
	Path string
	// Measure measures the bandwidth in bytes a second, 0 when ctx ends
	// first; nil means MeasureMemoryBandwidth.
	Measure func(ctx context.Context) float64
}

// bandwidthRecord is the file's content.
type bandwidthRecord struct {
	Machine     Machine   `json:"machine"`
	BytesPerSec float64   `json:"bytes_per_sec"`
	MeasuredAt  time.Time `json:"measured_at"`
}

// Cached returns the figure kept for m, if there is one. A file that cannot
// be read, is damaged, or was measured on another machine (or this one
// before a change) holds none: Learn replaces it.
func (c BandwidthCache) Cached(m Machine) (bytesPerSec float64, measuredAt time.Time, ok bool) {
	if c.Path == "" {
		return 0, time.Time{}, false
	}
	data, err := os.ReadFile(c.Path)
	if err != nil {
		return 0, time.Time{}, false
	}
	var rec bandwidthRecord
	if json.Unmarshal(data, &rec) != nil || rec.Machine != m || !plausibleBandwidth(rec.BytesPerSec) {
		return 0, time.Time{}, false
	}
	return rec.BytesPerSec, rec.MeasuredAt, true
}

// Learn measures the bandwidth and keeps it for m. A figure that could not
// be kept is still returned, with an error that says where; a measurement
// that ctx ended is neither kept nor returned.
func (c BandwidthCache) Learn(ctx context.Context, m Machine) (float64, error) {
	measure := c.Measure
	if measure == nil {
		measure = MeasureMemoryBandwidth
	}
	bw := measure(ctx)
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if !plausibleBandwidth(bw) {
		return 0, fmt.Errorf("memory bandwidth measured as %v bytes a second: not a figure to plan with", bw)
	}
	if c.Path == "" {
		return bw, nil
	}
	data, err := json.Marshal(bandwidthRecord{Machine: m, BytesPerSec: bw, MeasuredAt: time.Now().UTC()})
	if err != nil {
		return bw, err
	}
	// 0600 like every file Potluck writes for itself; losing it costs
	// one measurement.
	if err := atomicfile.Write(c.Path, append(data, '\n'), 0o600); err != nil {
		return bw, fmt.Errorf("keep the memory bandwidth in %s (it is measured again at the next start): %w", c.Path, err)
	}
	return bw, nil
}

// plausibleBandwidth rules out what no memory reads at: nothing, or a
// number that is not one.
func plausibleBandwidth(bw float64) bool {
	return bw > 0 && !math.IsInf(bw, 0) && !math.IsNaN(bw)
}
