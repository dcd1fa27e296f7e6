package hw

import (
	"context"
	"sync"
	"time"
)

// Monitor keeps a Report fresh. It probes fully once, then every Interval
// re-reads only what changes at run time (available memory, GPU memory in
// use: one small /proc read and a few NVML queries on an NVML session kept
// open), and calls OnChange when the change matters.
type Monitor struct {
	// Prober measures; nil means the real hardware.
	Prober *Prober
	// Interval between refreshes; 0 means 10 seconds.
	Interval time.Duration
	// Threshold is how much available memory or free VRAM must move, from
	// the last published report, to publish again; 0 means 256 MiB.
	Threshold uint64
	// OnChange receives the first report and every meaningful change, on
	// Run's goroutine: it must not block for long.
	OnChange func(Report)

	mu     sync.Mutex
	latest Report
	have   bool
}

// DefaultMonitorInterval and DefaultMonitorThreshold apply when the
// corresponding Monitor field is zero.
const (
	DefaultMonitorInterval  = 10 * time.Second
	DefaultMonitorThreshold = 256 * MiB
)

// Run probes and refreshes until ctx is done, which is not an error. It
// fails only if the first full probe does.
func (m *Monitor) Run(ctx context.Context) error {
	p := m.Prober
	if p == nil {
		p = new(Prober)
	}
	interval := m.Interval
	if interval <= 0 {
		interval = DefaultMonitorInterval
	}
	threshold := m.Threshold
	if threshold == 0 {
		threshold = DefaultMonitorThreshold
	}

	nv := p.openNVIDIA(ctx)
	defer nv.Close()
	cur, osGPUs, err := p.probe(ctx, nv)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	published := cur
	m.publish(cur)

	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		next, nextGPUs, err := p.refresh(ctx, cur, osGPUs, nv)
		if err != nil {
			p.log().Debug("hw: refresh failed", "err", err)
			continue
		}
		cur, osGPUs = next, nextGPUs
		m.store(cur)
		if Changed(published, cur, threshold) {
			published = cur
			m.publish(cur)
		}
	}
}

// Latest returns the most recent report and whether there is one yet. It
// may be fresher than the last one passed to OnChange.
func (m *Monitor) Latest() (Report, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.latest, m.have
}

func (m *Monitor) store(r Report) {
	m.mu.Lock()
	m.latest, m.have = r, true
	m.mu.Unlock()
}

func (m *Monitor) publish(r Report) {
	m.store(r)
	if m.OnChange != nil {
		m.OnChange(r)
	}
}

// Changed tells whether b differs meaningfully from a: GPUs came or went,
// a GPU's VRAM became known or unknown, or available memory or a GPU's free
// VRAM moved by more than threshold bytes.
func Changed(a, b Report, threshold uint64) bool {
	if len(a.GPUs) != len(b.GPUs) || moved(a.Memory.AvailableBytes, b.Memory.AvailableBytes, threshold) ||
		a.Memory.TotalBytes != b.Memory.TotalBytes {
		return true
	}
	for i := range a.GPUs {
		ga, gb := a.GPUs[i], b.GPUs[i]
		if ga.UUID != gb.UUID || ga.PCIAddress != gb.PCIAddress || ga.Name != gb.Name ||
			ga.VRAMKnown != gb.VRAMKnown || ga.VRAMTotal != gb.VRAMTotal ||
			moved(ga.VRAMFree, gb.VRAMFree, threshold) {
			return true
		}
	}
	return false
}

func moved(a, b, threshold uint64) bool {
	if a > b {
		return a-b > threshold
	}
	return b-a > threshold
}
