package app

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/hw"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/settings"
)

// listDevices asks llama.cpp which devices it sees, once at start. A
// backend that fails to load is a warning, not a failure: the node serves
// on what works.
func (n *Node) listDevices(ctx context.Context) {
	rt, _, err := n.engineRuntime()
	if err != nil {
		return
	}
	devs, problems, err := rt.Devices(ctx, nil)
	if err != nil {
		n.log.Warn("list llama.cpp's devices", "err", err)
		n.warn(nodestate.Warning{Code: "devices", Severity: nodestate.SeverityWarning, Message: "could not list llama.cpp's devices, serving on the CPU: " + err.Error()})
	}
	for _, p := range problems {
		n.warn(nodestate.Warning{Code: "backend-" + strings.ToLower(p.Backend), Severity: nodestate.SeverityWarning,
			Message: "llama.cpp's " + p.Backend + " backend did not load, so its devices are not used: " + p.Message})
	}
	n.mu.Lock()
	n.engDevices = devs
	if n.hwReport != nil {
		r := withEngineGPUs(*n.hwReport, devs)
		n.hwReport = &r
	}
	n.mu.Unlock()
	n.log.Info("devices", "llama.cpp", deviceNames(devs))
}

func deviceNames(devs []engine.Device) string {
	var names []string
	for _, d := range devs {
		if d.Description != "" {
			names = append(names, d.Name+" ("+d.Description+")")
		} else {
			names = append(names, d.Name)
		}
	}
	return strings.Join(names, ", ")
}

// localDevices are this node's devices with what each offers: llama.cpp's
// GPUs (each once: a card both CUDA and Vulkan see is used through CUDA),
// restricted to the user's choice, then the CPU, which always serves.
func (n *Node) localDevices() []nodestate.DeviceInfo {
	return slices.DeleteFunc(n.allDevices(), func(d nodestate.DeviceInfo) bool { return d.Unused })
}

// allDevices is localDevices with the devices the user left out, marked.
func (n *Node) allDevices() []nodestate.DeviceInfo {
	n.mu.Lock()
	devs, report, capBytes, bw, only := n.engDevices, n.hwReport, n.shareMemoryLocked(), n.hostBandwidth, n.deviceChoiceLocked()
	n.mu.Unlock()
	return planDevices(devs, report, capBytes, bw, only, hw.DefaultOfferPolicy())
}

// headDevices are the devices this node serves its own model with: the
// same as localDevices, but the model may use all the memory the user did
// not reserve (--reserve-memory); --share-memory caps only what is lent.
func (n *Node) headDevices() []nodestate.DeviceInfo {
	n.mu.Lock()
	devs, report, bw, only := n.engDevices, n.hwReport, n.hostBandwidth, n.deviceChoiceLocked()
	n.mu.Unlock()
	policy := hw.DefaultOfferPolicy()
	policy.RAMFraction = 1
	if n.cfg.ReserveMemory > 0 {
		policy.RAMReserve = n.cfg.ReserveMemory
	}
	return slices.DeleteFunc(planDevices(devs, report, 0, bw, only, policy), func(d nodestate.DeviceInfo) bool { return d.Unused })
}

// deviceChoiceLocked is the devices the user chose: --device, else the
// choice saved from the tray or the API; empty means automatic.
func (n *Node) deviceChoiceLocked() []string {
	if len(n.cfg.Devices) > 0 {
		return n.cfg.Devices
	}
	return n.settings.Get().Devices
}

func (n *Node) deviceChoice() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.deviceChoiceLocked())
}

// SetDevices implements tray.Controller.
func (n *Node) SetDevices(ctx context.Context, devices []string) error {
	if len(n.cfg.Devices) > 0 {
		return &nodestate.InputError{Field: "devices", Msg: "chosen with --device (or POTLUCK_DEVICE) when Potluck started: restart without it to choose here"}
	}
	n.mu.Lock()
	known := n.engDevices
	n.mu.Unlock()
	var clean []string
	for _, d := range devices {
		if d = strings.TrimSpace(d); d != "" {
			clean = append(clean, d)
		}
	}
	if err := checkDevices(known, clean); err != nil {
		return err
	}
	n.opMu.Lock()
	defer n.opMu.Unlock()
	if err := n.settings.Modify(func(s *settings.Settings) { s.Devices = clean }); err != nil {
		return err
	}
	n.log.Info("devices chosen", "devices", strings.Join(clean, ","))
	if err := n.reexpose(); err != nil {
		return err
	}
	if h := n.modelHost(); h != nil {
		h.Kick()
	}
	return nil
}

// checkDevices says which of names llama.cpp does not see, with the
// devices it does; nil when it sees them all.
func checkDevices(known []engine.Device, names []string) error {
	for _, d := range names {
		ok := strings.EqualFold(d, "CPU") || strings.EqualFold(d, "none") ||
			slices.ContainsFunc(known, func(k engine.Device) bool { return strings.EqualFold(k.Name, d) })
		if !ok {
			seen := []string{"CPU"}
			for _, k := range known {
				if !strings.EqualFold(k.Name, "CPU") {
					seen = append(seen, k.Name)
				}
			}
			return &nodestate.InputError{Field: "device", Value: d, Msg: "llama.cpp has no such device; it sees " +
				strings.Join(seen, ", ") + " (potluck engine status lists them)"}
		}
	}
	return nil
}

// checkStartDevices stops a start whose --device names a device llama.cpp
// does not see, rather than serving on what is left. Before llama.cpp
// listed its devices (it is being fetched), nothing is known to check.
func (n *Node) checkStartDevices() error {
	n.mu.Lock()
	known := n.engDevices
	n.mu.Unlock()
	if len(known) == 0 || len(n.cfg.Devices) == 0 {
		return nil
	}
	if err := checkDevices(known, n.cfg.Devices); err != nil {
		return fmt.Errorf("--device: %w", err)
	}
	return nil
}

// planDevices is localDevices as a pure function.
func planDevices(devs []engine.Device, report *hw.Report, capBytes uint64, hostBW float64, only []string, policy hw.OfferPolicy) []nodestate.DeviceInfo {
	var gpus []hw.GPU
	var ramTotal uint64
	if report != nil {
		gpus, ramTotal = report.GPUs, report.Memory.TotalBytes
	}
	cuda := slices.ContainsFunc(devs, func(d engine.Device) bool { return d.Backend == "CUDA" })
	used := map[int]bool{} // hw GPUs matched already
	var out []nodestate.DeviceInfo
	for _, d := range devs {
		if d.Backend == "CPU" || d.Backend == "RPC" {
			continue
		}
		if cuda && d.Backend == "Vulkan" && strings.Contains(strings.ToUpper(d.Description), "NVIDIA") {
			continue // the same card, better through CUDA
		}
		info := nodestate.DeviceInfo{Name: d.Name, Backend: d.Backend, Description: d.Description, TotalBytes: d.TotalBytes,
			Speed: engine.DeviceSpeed(d, hostBW), Unused: len(only) > 0 && !named(only, d.Name)}
		if g, i := matchGPU(d, gpus, used); i >= 0 {
			used[i] = true
			if g.VRAMKnown && g.VRAMTotal > 0 {
				info.TotalBytes = g.VRAMTotal
			}
			if g.BandwidthBytesPerSec > 0 {
				info.Speed = engine.GPUSpeed(g.BandwidthBytesPerSec)
			}
		}
		info.Offer = policy.GPUShare(info.TotalBytes)
		out = append(out, info)
	}
	// The CPU always takes part in serving: it keeps the embeddings and
	// whatever does not fit elsewhere. --device decides what it lends.
	out = append(out, nodestate.DeviceInfo{Name: "CPU", Backend: "CPU", Description: cpuDescription(report), TotalBytes: ramTotal,
		Offer: policy.RAMShare(ramTotal), Speed: engine.CPUSpeed(hostBW)})
	capOffers(out, capBytes)
	return out
}

func cpuDescription(r *hw.Report) string {
	if r == nil {
		return ""
	}
	return r.CPU.Model
}

// matchGPU finds the hardware report's entry for a llama.cpp device: the
// first GPU not matched yet whose name the device's description contains.
func matchGPU(d engine.Device, gpus []hw.GPU, used map[int]bool) (hw.GPU, int) {
	desc := strings.ToLower(d.Description)
	for i, g := range gpus {
		if !used[i] && g.Name != "" && strings.Contains(desc, strings.ToLower(g.Name)) {
			return g, i
		}
	}
	return hw.GPU{}, -1
}

// capOffers lowers the offers of the devices in use to capBytes in all (0:
// no cap), GPU memory first, as it is the fast memory, and system memory
// last.
func capOffers(devs []nodestate.DeviceInfo, capBytes uint64) {
	if capBytes == 0 {
		return
	}
	left := capBytes
	for i := range devs {
		if devs[i].Unused {
			continue
		}
		devs[i].Offer = min(devs[i].Offer, left)
		left -= devs[i].Offer
	}
}

// offerTotal is what devs lend together.
func offerTotal(devs []nodestate.DeviceInfo) uint64 {
	var n uint64
	for _, d := range devs {
		n += d.Offer
	}
	return n
}

// lent are the devices a worker exposes, in order: those in use, and of
// them only those named in only (the user's choice) when it is set: the CPU
// serves the node's own model, but is lent only by name. A device may lend
// nothing for now (the hardware is not probed yet, or the cap is spent); it
// keeps its place, which is its name on the head (RPC0, RPC1, ...).
func lent(devs []nodestate.DeviceInfo, only []string) []nodestate.DeviceInfo {
	return slices.DeleteFunc(slices.Clone(devs), func(d nodestate.DeviceInfo) bool {
		return d.Unused || (len(only) > 0 && !named(only, d.Name))
	})
}

// named says whether the user's --device list names a device.
func named(only []string, name string) bool {
	return slices.ContainsFunc(only, func(s string) bool { return strings.EqualFold(s, name) })
}

// decodeDevices reads the devices a peer published; nil when it published
// none (an older Potluck: its whole offer is taken as its CPU's).
func decodeDevices(raw json.RawMessage) []nodestate.DeviceInfo {
	if len(raw) == 0 {
		return nil
	}
	var devs []nodestate.DeviceInfo
	if json.Unmarshal(raw, &devs) != nil {
		return nil
	}
	return devs
}
