package hw

import (
	"fmt"
	"strings"
)

// OfferPolicy decides how much of this machine's memory to share: each
// GPU's VRAM less a reserve (GPUReserve, or a tenth of the card if more),
// plus RAMFraction of system memory while always leaving RAMReserve to the
// owner, all capped by Cap (the user's --share-memory; 0 means no cap).
//
// The offer is worked out from totals, never from what is free at the
// moment: a model that Potluck itself loads takes free memory, and an offer
// that shrank with it would change the plan that loaded the model, over and
// over. It changes only when the cap or the hardware does. Fields are taken
// as they are; start from DefaultOfferPolicy.
type OfferPolicy struct {
	// GPUReserve is kept on every GPU for the desktop and other programs;
	// a tenth of the card's memory when that is more.
	GPUReserve uint64
	// RAMFraction of available system memory is offered for CPU shards,
	// between 0 and 1.
	RAMFraction float64
	// RAMReserve of available system memory is never offered.
	RAMReserve uint64
	// Cap bounds the whole offer; 0 means no cap.
	Cap uint64
}

// DefaultOfferPolicy keeps 512 MiB or a tenth of each GPU, offers half of
// the RAM but never the last 4 GiB, and has no cap.
func DefaultOfferPolicy() OfferPolicy {
	return OfferPolicy{
		GPUReserve:  512 * MiB,
		RAMFraction: 0.5,
		RAMReserve:  4 * GiB,
	}
}

// Offer is what this machine would advertise to the pool: the RPC worker's
// memory (-m) and the node info's capacity.
type Offer struct {
	// VRAMBytes is offered GPU memory, including unified memory on Apple
	// Silicon; RAMBytes is system memory for CPU shards.
	VRAMBytes  uint64 `json:"vram_bytes"`
	RAMBytes   uint64 `json:"ram_bytes"`
	TotalBytes uint64 `json:"total_bytes"`
	// Devices splits the offer by device, GPUs first (by their index in
	// Report.GPUs) and the CPU last; devices offering nothing are left out.
	Devices []DeviceOffer `json:"devices"`
	// Capped is set when Cap lowered the offer.
	Capped bool `json:"capped"`
	// Explanation says, line by line, how the numbers came about.
	Explanation []string `json:"explanation"`
}

// DeviceOffer is the share of one device.
type DeviceOffer struct {
	// GPU is the index in Report.GPUs, or -1 for system memory (CPU).
	GPU     int    `json:"gpu"`
	Name    string `json:"name"`
	Backend string `json:"backend"`
	Bytes   uint64 `json:"bytes"`
}

// String is the one-line summary, e.g. "12.0 GiB (8.0 GiB VRAM + 4.0 GiB RAM)".
func (o Offer) String() string {
	return fmt.Sprintf("%s (%s VRAM + %s RAM)", FormatSize(o.TotalBytes), FormatSize(o.VRAMBytes), FormatSize(o.RAMBytes))
}

// Offer applies the policy to a report.
func (p OfferPolicy) Offer(r Report) Offer {
	o := Offer{Devices: []DeviceOffer{}}
	say := func(format string, args ...any) {
		o.Explanation = append(o.Explanation, fmt.Sprintf(format, args...))
	}
	unified := false
	for i, g := range r.GPUs {
		switch {
		case g.UnifiedMemory:
			unified = true // shared with system memory, counted below
		case !g.VRAMKnown:
			say("%s: VRAM unknown, not offered", g.Name)
		case g.Backend == BackendNone:
			say("%s: no usable driver, not offered", g.Name)
		default:
			keep := p.gpuKeep(g.VRAMTotal)
			share := p.GPUShare(g.VRAMTotal)
			say("%s: %s, keeping %s: %s", g.Name, FormatSize(g.VRAMTotal), FormatSize(keep), FormatSize(share))
			if share > 0 {
				o.VRAMBytes += share
				o.Devices = append(o.Devices, DeviceOffer{GPU: i, Name: g.Name, Backend: g.Backend, Bytes: share})
			}
		}
	}

	ram := p.ramShare(r.Memory.TotalBytes)
	frac := fmt.Sprintf("%.0f%%", p.RAMFraction*100)
	if unified {
		// Apple Silicon: system memory is GPU memory; offer it to Metal
		// rather than twice.
		g, i := firstUnified(r.GPUs)
		say("%s: unified memory, %s of %s, keeping %s: %s", g.Name, frac, FormatSize(r.Memory.TotalBytes), FormatSize(p.RAMReserve), FormatSize(ram))
		if ram > 0 {
			o.VRAMBytes += ram
			o.Devices = append(o.Devices, DeviceOffer{GPU: i, Name: g.Name, Backend: g.Backend, Bytes: ram})
		}
	} else {
		say("system memory: %s of %s, keeping %s: %s", frac, FormatSize(r.Memory.TotalBytes), FormatSize(p.RAMReserve), FormatSize(ram))
		if ram > 0 {
			o.RAMBytes = ram
			o.Devices = append(o.Devices, DeviceOffer{GPU: -1, Name: cpuName(r.CPU), Backend: "cpu", Bytes: ram})
		}
	}

	if p.Cap > 0 && o.VRAMBytes+o.RAMBytes > p.Cap {
		o.Capped = true
		p.applyCap(&o)
		say("capped at %s by --share-memory", FormatSize(p.Cap))
	}
	o.TotalBytes = o.VRAMBytes + o.RAMBytes
	return o
}

// GPUShare is what the policy offers of a GPU with total bytes of memory.
func (p OfferPolicy) GPUShare(total uint64) uint64 { return sub(total, p.gpuKeep(total)) }

func (p OfferPolicy) gpuKeep(total uint64) uint64 { return max(p.GPUReserve, total/10) }

// RAMShare is what the policy offers of total bytes of system memory.
func (p OfferPolicy) RAMShare(total uint64) uint64 { return p.ramShare(total) }

// ramShare is RAMFraction of total, but never more than total-RAMReserve.
func (p OfferPolicy) ramShare(total uint64) uint64 {
	f := min(max(p.RAMFraction, 0), 1)
	return min(uint64(float64(total)*f), sub(total, p.RAMReserve))
}

// applyCap lowers the offer to Cap, keeping GPU memory first (it is the
// fast memory) in device order, and system memory last.
func (p OfferPolicy) applyCap(o *Offer) {
	left := p.Cap
	o.VRAMBytes, o.RAMBytes = 0, 0
	kept := o.Devices[:0]
	for _, d := range o.Devices {
		d.Bytes = min(d.Bytes, left)
		left -= d.Bytes
		if d.Bytes == 0 {
			continue
		}
		if d.GPU < 0 {
			o.RAMBytes += d.Bytes
		} else {
			o.VRAMBytes += d.Bytes
		}
		kept = append(kept, d)
	}
	o.Devices = kept
}

func firstUnified(gpus []GPU) (GPU, int) {
	for i, g := range gpus {
		if g.UnifiedMemory {
			return g, i
		}
	}
	return GPU{}, -1
}

func cpuName(c CPU) string {
	if m := strings.TrimSpace(c.Model); m != "" {
		return m
	}
	return "CPU"
}

// sub is a-b, or 0 when b > a.
func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}
