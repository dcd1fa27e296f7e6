package app

import (
	"cmp"
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/hw"
	"github.com/potluck-gpu/potluck/nodestate"
)

// probeHardware takes the first look at this machine, before anything is
// offered to the mesh. The memory bandwidth is the one measured on this
// machine before; where there is none it returns the machine to measure,
// which learnBandwidth does off the start path. Until then plans assume a
// default (engine.CPUSpeed).
func (n *Node) probeHardware(ctx context.Context) (unmeasured *hw.Machine) {
	r, err := hw.Probe(ctx)
	if err != nil {
		n.log.Warn("hardware probe", "err", err)
		return nil
	}
	m := hw.MachineOf(r)
	bw, at, known := n.bandwidth.Cached(m)
	r.Memory.BandwidthBytesPerSec = bw
	n.mu.Lock()
	n.hwReport = &r
	n.hostBandwidth = bw
	n.mu.Unlock()
	if known {
		n.log.Info("memory bandwidth", "GB/s", int(bw/1e9), "measured_on", at.Format(time.DateOnly))
	} else {
		unmeasured = &m
	}
	if r.GPUListError != "" {
		n.log.Warn("the GPUs could not be listed", "err", r.GPUListError)
		n.warn(nodestate.Warning{Code: "gpu-list", Severity: nodestate.SeverityWarning, Message: "the system did not list the GPUs (" + r.GPUListError +
			"): Potluck asks NVIDIA's driver (NVML) and llama.cpp instead, and offers what llama.cpp sees"})
	}
	return unmeasured
}

// learnBandwidth measures the memory bandwidth of m, this machine, keeps it
// for the next starts, and plans with it: decoding on the CPU reads memory
// at this rate.
func (n *Node) learnBandwidth(ctx context.Context, m hw.Machine) {
	n.log.Info("measuring memory bandwidth, once on this machine")
	bw, err := n.bandwidth.Learn(ctx, m)
	if err != nil && ctx.Err() == nil {
		n.log.Warn("memory bandwidth", "err", err)
	}
	if bw <= 0 {
		return
	}
	n.mu.Lock()
	n.hostBandwidth = bw
	if n.hwReport != nil {
		r := *n.hwReport
		r.Memory.BandwidthBytesPerSec = bw
		n.hwReport = &r
	}
	n.mu.Unlock()
	n.log.Info("memory bandwidth", "GB/s", int(bw/1e9))
	n.events.publish(nodestate.Event{Kind: nodestate.EventStatus}) // the devices' speeds changed
	n.hardwareChanged()
}

// hardwareChanged tells the mesh what this machine now offers, and has the
// model served here re-planned: a plan the change alters restarts.
func (n *Node) hardwareChanged() {
	n.publishInfo()
	if h := n.modelHost(); h != nil {
		h.Kick()
	}
}

// withEngineGPUs fills a report that lists no GPUs, where the OS could not
// list them, from llama.cpp's own device list.
func withEngineGPUs(r hw.Report, devs []engine.Device) hw.Report {
	if len(r.GPUs) > 0 || r.GPUListError == "" {
		return r
	}
	for _, d := range devs {
		if d.Backend == "CPU" || d.Backend == "RPC" || d.TotalBytes == 0 {
			continue
		}
		g := hw.GPU{Name: cmp.Or(d.Description, d.Name), Backend: strings.ToLower(d.Backend), VRAMTotal: d.TotalBytes, VRAMFree: d.FreeBytes,
			VRAMKnown: true, Utilization: hw.Unknown, TemperatureC: hw.Unknown}
		for _, v := range []string{hw.VendorNVIDIA, hw.VendorAMD, hw.VendorIntel, hw.VendorApple} {
			if strings.Contains(strings.ToUpper(g.Name), strings.ToUpper(v)) || (v == hw.VendorAMD && strings.Contains(g.Name, "Radeon")) {
				g.Vendor = v
				break
			}
		}
		r.GPUs = append(r.GPUs, g)
	}
	return r
}

// watchHardware re-probes free memory periodically and republishes the
// offer when it changes.
func (n *Node) watchHardware(ctx context.Context) error {
	m := &hw.Monitor{
		Interval: n.cfg.HWInterval,
		OnChange: func(r hw.Report) {
			n.mu.Lock()
			r = withEngineGPUs(r, n.engDevices)
			r.Memory.BandwidthBytesPerSec = n.hostBandwidth
			n.hwReport = &r
			n.mu.Unlock()
			n.hardwareChanged()
		},
	}
	if m.Interval <= 0 {
		m.Interval = hw.DefaultMonitorInterval
	}
	if err := m.Run(ctx); err != nil {
		n.log.Warn("hardware monitor stopped", "err", err)
	}
	return nil
}

// offer is what this machine offers now, under the user's cap.
func (n *Node) offer() hw.Offer {
	n.mu.Lock()
	r, capBytes := n.hwReport, n.shareMemoryLocked()
	n.mu.Unlock()
	if r == nil {
		return hw.Offer{}
	}
	p := hw.DefaultOfferPolicy()
	p.Cap = capBytes
	return p.Offer(*r)
}

// hardwareSummary is the part of the report peers see.
func (n *Node) hardwareSummary() json.RawMessage {
	n.mu.Lock()
	r := n.hwReport
	n.mu.Unlock()
	if r == nil {
		return nil
	}
	// Totals only: what is free moves all the time, and every change
	// would be announced to the whole mesh. Offers come from totals too.
	type gpu struct {
		Name      string `json:"name"`
		VRAMTotal uint64 `json:"vram_total"`
		Backend   string `json:"backend,omitempty"`
	}
	sum := struct {
		CPU      string `json:"cpu"`
		Cores    int    `json:"cores"`
		RAMTotal uint64 `json:"ram_total"`
		GPUs     []gpu  `json:"gpus,omitempty"`
		OS       string `json:"os"`
		Arch     string `json:"arch"`
	}{CPU: r.CPU.Model, Cores: r.CPU.LogicalCores, RAMTotal: r.Memory.TotalBytes, OS: r.OS, Arch: r.Arch}
	for _, g := range r.GPUs {
		sum.GPUs = append(sum.GPUs, gpu{Name: g.Name, VRAMTotal: g.VRAMTotal, Backend: g.Backend})
	}
	data, err := json.Marshal(sum)
	if err != nil {
		return nil
	}
	return data
}

// parseMemory reads a size such as "12GiB"; empty means the default offer.
func parseMemory(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	v, err := hw.ParseSize(s)
	if err != nil {
		return 0, &nodestate.InputError{Field: "memory", Msg: err.Error()}
	}
	return v, nil
}
