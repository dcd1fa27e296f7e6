package app

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/hw"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/settings"
)

func TestPlanDevices(t *testing.T) {
	const gib = uint64(1) << 30
	report := &hw.Report{
		CPU:    hw.CPU{Model: "AMD Ryzen 9 7950X"},
		Memory: hw.Memory{TotalBytes: 64 * gib, AvailableBytes: 10 * gib},
		GPUs: []hw.GPU{{Vendor: hw.VendorNVIDIA, Name: "NVIDIA GeForce RTX 4090", VRAMTotal: 24 * gib, VRAMFree: gib, VRAMKnown: true,
			BandwidthBytesPerSec: 1008e9}},
	}
	// llama.cpp sees the card twice (CUDA and Vulkan), and an AMD card.
	devs := []engine.Device{
		{Name: "CUDA0", Backend: "CUDA", Description: "NVIDIA GeForce RTX 4090", TotalBytes: 24 * gib},
		{Name: "Vulkan0", Backend: "Vulkan", Description: "NVIDIA GeForce RTX 4090", TotalBytes: 24 * gib},
		{Name: "Vulkan1", Backend: "Vulkan", Description: "AMD Radeon RX 7900 XTX (RADV NAVI31)", TotalBytes: 24 * gib},
		{Name: "CPU", Backend: "CPU"},
	}
	show := func(ds []nodestate.DeviceInfo) string {
		var parts []string
		for _, d := range ds {
			s := fmt.Sprintf("%s:%.1f", d.Name, float64(d.Offer)/float64(gib))
			if d.Unused {
				s += ":unused"
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, " ")
	}
	for _, tc := range []struct {
		name      string
		capBytes  uint64
		only      []string
		want      string
		wantLent  string
		checkFast bool
	}{
		{name: "automatic", want: "CUDA0:21.6 Vulkan1:21.6 CPU:32.0", wantLent: "CUDA0 Vulkan1 CPU", checkFast: true},
		{name: "capped, GPU memory first", capBytes: 30 * gib, want: "CUDA0:21.6 Vulkan1:8.4 CPU:0.0", wantLent: "CUDA0 Vulkan1 CPU"},
		{name: "the user names the NVIDIA card", only: []string{"CUDA0"}, want: "CUDA0:21.6 Vulkan1:21.6:unused CPU:32.0", wantLent: "CUDA0"},
		{name: "the user names a card and the CPU", only: []string{"cuda0", "CPU"}, want: "CUDA0:21.6 Vulkan1:21.6:unused CPU:32.0", wantLent: "CUDA0 CPU"},
		{name: "no device at all", only: []string{"none"}, want: "CUDA0:21.6:unused Vulkan1:21.6:unused CPU:32.0", wantLent: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := planDevices(devs, report, tc.capBytes, 20e9, tc.only, hw.DefaultOfferPolicy())
			if s := show(got); s != tc.want {
				t.Errorf("devices %s, want %s", s, tc.want)
			}
			var lentNames []string
			for _, d := range lent(got, tc.only) {
				lentNames = append(lentNames, d.Name)
			}
			if s := strings.Join(lentNames, " "); s != tc.wantLent {
				t.Errorf("lends %q, want %q", s, tc.wantLent)
			}
			if tc.checkFast {
				cuda := got[0]
				if cuda.Speed.Source != "nvml" || cuda.Speed.BytesPerSecond < 700e9 {
					t.Errorf("the CUDA card's speed should come from NVML: %+v", cuda.Speed)
				}
				if got[1].Speed.Source != "default" || got[2].Speed.Source != "measured" {
					t.Errorf("speeds: %+v", []engine.Speed{got[1].Speed, got[2].Speed})
				}
			}
		})
	}
	// Offers come from totals: the same whatever is free.
	busy := *report
	busy.Memory.AvailableBytes, busy.GPUs = gib, slices.Clone(report.GPUs)
	busy.GPUs[0].VRAMFree = 0
	if a, b := show(planDevices(devs, report, 0, 20e9, nil, hw.DefaultOfferPolicy())), show(planDevices(devs, &busy, 0, 20e9, nil, hw.DefaultOfferPolicy())); a != b {
		t.Errorf("offers moved with free memory: %s, then %s", a, b)
	}
	// Before the hardware is probed the devices are there, lending nothing.
	if s := show(planDevices(devs, nil, 0, 0, nil, hw.DefaultOfferPolicy())); s != "CUDA0:21.6 Vulkan1:21.6 CPU:0.0" {
		t.Errorf("without a hardware report: %s", s)
	}
}

// The node's own model may use all the memory the user did not reserve;
// --share-memory caps only what it lends.
func TestHeadUsesAllButTheReserve(t *testing.T) {
	report := &hw.Report{Memory: hw.Memory{TotalBytes: 64 * hw.GiB}}
	st, err := settings.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Modify(func(s *settings.Settings) { s.ShareMemory = 2 * hw.GiB }); err != nil {
		t.Fatal(err)
	}
	n := &Node{cfg: Config{ReserveMemory: 8 * hw.GiB}, hwReport: report, settings: st}
	cpuOffer := func(ds []nodestate.DeviceInfo) uint64 {
		for _, d := range ds {
			if d.Name == "CPU" {
				return d.Offer
			}
		}
		return 0
	}
	if got := cpuOffer(n.headDevices()); got != 56*hw.GiB {
		t.Errorf("the head's own CPU: %s, want 56 GiB (64 less the 8 reserved)", hw.FormatSize(got))
	}
	if got := cpuOffer(n.localDevices()); got != 2*hw.GiB {
		t.Errorf("lent: %s, want the 2 GiB --share-memory cap", hw.FormatSize(got))
	}
	n.cfg.ReserveMemory = 0
	if got := cpuOffer(n.headDevices()); got != 60*hw.GiB {
		t.Errorf("default reserve: %s, want 60 GiB", hw.FormatSize(got))
	}
}
