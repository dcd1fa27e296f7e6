package hw

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// machines are reports of the kinds of machines a pool meets.
var machines = map[string]Report{
	"no GPU": {
		CPU:    CPU{Model: "AMD EPYC", PhysicalCores: 2, LogicalCores: 2},
		Memory: Memory{TotalBytes: 25276502016, AvailableBytes: 22 * GiB},
		GPUs:   []GPU{},
		OS:     "linux", Arch: "amd64",
	},
	"1 NVIDIA": {
		CPU:    CPU{Model: "AMD Ryzen 9 7950X 16-Core Processor", PhysicalCores: 16, LogicalCores: 32},
		Memory: Memory{TotalBytes: 64 * GiB, AvailableBytes: 40 * GiB},
		GPUs: []GPU{{
			Vendor: VendorNVIDIA, Name: "NVIDIA GeForce RTX 4090", UUID: "GPU-5b2c", PCIAddress: "0000:01:00.0", Backend: BackendCUDA,
			VRAMTotal: 24564 * MiB, VRAMFree: 23 * GiB, VRAMUsed: 1044 * MiB, VRAMKnown: true,
			Utilization: 3, TemperatureC: 41, Driver: "550.54.15", CUDAVersion: "12.4",
		}},
		OS: "linux", Arch: "amd64",
	},
	"2 NVIDIA": {
		CPU:    CPU{Model: "Intel(R) Core(TM) i9-10900X CPU @ 3.70GHz", PhysicalCores: 10, LogicalCores: 20},
		Memory: Memory{TotalBytes: 128 * GiB, AvailableBytes: 100 * GiB},
		GPUs: []GPU{
			{Vendor: VendorNVIDIA, Name: "NVIDIA GeForce RTX 3090", UUID: "GPU-aaaa", Backend: BackendCUDA,
				VRAMTotal: 24 * GiB, VRAMFree: 2 * GiB, VRAMUsed: 22 * GiB, VRAMKnown: true, Utilization: 98, TemperatureC: 77,
				Driver: "550.54.15", CUDAVersion: "12.4"},
			{Vendor: VendorNVIDIA, Name: "NVIDIA GeForce RTX 3090", UUID: "GPU-bbbb", Backend: BackendCUDA,
				VRAMTotal: 24 * GiB, VRAMFree: 24*GiB - 300*MiB, VRAMUsed: 300 * MiB, VRAMKnown: true, Utilization: 0, TemperatureC: 35,
				Driver: "550.54.15", CUDAVersion: "12.4"},
		},
		OS: "linux", Arch: "amd64",
	},
	"AMD": {
		CPU:    CPU{Model: "AMD Ryzen 7 7700X 8-Core Processor", PhysicalCores: 8, LogicalCores: 16},
		Memory: Memory{TotalBytes: 32 * GiB, AvailableBytes: 6 * GiB},
		GPUs: []GPU{
			{Vendor: VendorAMD, Name: "Radeon RX 7900 XT/7900 XTX/7900M", PCIAddress: "0000:03:00.0", Backend: BackendVulkan,
				VRAMTotal: 24 * GiB, VRAMFree: 23 * GiB, VRAMUsed: GiB, VRAMKnown: true, Utilization: 7, TemperatureC: Unknown, Driver: "amdgpu"},
			{Vendor: VendorAMD, Name: "Raphael", PCIAddress: "0000:12:00.0", Backend: BackendVulkan,
				Utilization: Unknown, TemperatureC: Unknown, Driver: "amdgpu"},
		},
		OS: "linux", Arch: "amd64",
	},
	"Apple Silicon": {
		CPU:    CPU{Model: "Apple M2 Pro", PhysicalCores: 12, LogicalCores: 12},
		Memory: Memory{TotalBytes: 32 * GiB, AvailableBytes: 20 * GiB},
		GPUs: []GPU{{
			Vendor: VendorApple, Name: "Apple M2 Pro GPU", Backend: BackendMetal,
			VRAMTotal: 32 * GiB, VRAMFree: 20 * GiB, VRAMUsed: 12 * GiB, VRAMKnown: true,
			Utilization: Unknown, TemperatureC: Unknown, UnifiedMemory: true,
		}},
		OS: "darwin", Arch: "arm64",
	},
}

func TestOffer(t *testing.T) {
	def := DefaultOfferPolicy()
	capped := def
	capped.Cap = 12 * GiB
	tests := []struct {
		machine   string
		policy    OfferPolicy
		vram, ram uint64
		devices   []DeviceOffer
		capped    bool
		explains  []string
	}{
		{
			// Offers come from totals: 23.5 GiB, not the 22 GiB available.
			machine: "no GPU", policy: def, ram: 12638251008,
			devices:  []DeviceOffer{{GPU: -1, Name: "AMD EPYC", Backend: "cpu", Bytes: 12638251008}},
			explains: []string{"system memory: 50% of 23.5 GiB, keeping 4.0 GiB: 11.8 GiB"},
		},
		{
			// A tenth of the card is kept, whatever is in use on it.
			machine: "1 NVIDIA", policy: def, vram: 24564*MiB - 24564*MiB/10, ram: 32 * GiB,
			devices: []DeviceOffer{
				{GPU: 0, Name: "NVIDIA GeForce RTX 4090", Backend: BackendCUDA, Bytes: 24564*MiB - 24564*MiB/10},
				{GPU: -1, Name: "AMD Ryzen 9 7950X 16-Core Processor", Backend: "cpu", Bytes: 32 * GiB},
			},
			explains: []string{"NVIDIA GeForce RTX 4090: 24.0 GiB, keeping 2.4 GiB: 21.6 GiB", "system memory: 50% of 64.0 GiB, keeping 4.0 GiB: 32.0 GiB"},
		},
		{
			machine: "1 NVIDIA", policy: capped, vram: 12 * GiB, capped: true,
			devices:  []DeviceOffer{{GPU: 0, Name: "NVIDIA GeForce RTX 4090", Backend: BackendCUDA, Bytes: 12 * GiB}},
			explains: []string{"capped at 12.0 GiB by --share-memory"},
		},
		{
			// The first card is busy with something else: that changes
			// nothing, its total is the same.
			machine: "2 NVIDIA", policy: capped, vram: 12 * GiB, capped: true,
			devices: []DeviceOffer{
				{GPU: 0, Name: "NVIDIA GeForce RTX 3090", Backend: BackendCUDA, Bytes: 12 * GiB},
			},
		},
		{
			machine: "2 NVIDIA", policy: OfferPolicy{GPUReserve: 4 * GiB}, vram: 40 * GiB,
			devices: []DeviceOffer{
				{GPU: 0, Name: "NVIDIA GeForce RTX 3090", Backend: BackendCUDA, Bytes: 20 * GiB},
				{GPU: 1, Name: "NVIDIA GeForce RTX 3090", Backend: BackendCUDA, Bytes: 20 * GiB},
			},
			explains: []string{"NVIDIA GeForce RTX 3090: 24.0 GiB, keeping 4.0 GiB: 20.0 GiB", "system memory: 0% of 128.0 GiB, keeping 0 B: 0 B"},
		},
		{
			machine: "AMD", policy: def, vram: 24*GiB - 24*GiB/10, ram: 16 * GiB,
			devices: []DeviceOffer{
				{GPU: 0, Name: "Radeon RX 7900 XT/7900 XTX/7900M", Backend: BackendVulkan, Bytes: 24*GiB - 24*GiB/10},
				{GPU: -1, Name: "AMD Ryzen 7 7700X 8-Core Processor", Backend: "cpu", Bytes: 16 * GiB},
			},
			explains: []string{"Raphael: VRAM unknown, not offered", "system memory: 50% of 32.0 GiB, keeping 4.0 GiB: 16.0 GiB"},
		},
		{
			machine: "Apple Silicon", policy: def, vram: 16 * GiB,
			devices:  []DeviceOffer{{GPU: 0, Name: "Apple M2 Pro GPU", Backend: BackendMetal, Bytes: 16 * GiB}},
			explains: []string{"Apple M2 Pro GPU: unified memory, 50% of 32.0 GiB, keeping 4.0 GiB: 16.0 GiB"},
		},
		{
			machine: "Apple Silicon", policy: OfferPolicy{RAMFraction: 2, RAMReserve: 24 * GiB}, vram: 8 * GiB,
			devices: []DeviceOffer{{GPU: 0, Name: "Apple M2 Pro GPU", Backend: BackendMetal, Bytes: 8 * GiB}},
		},
		{
			machine: "Apple Silicon", policy: OfferPolicy{RAMFraction: 0.5, RAMReserve: 40 * GiB},
			devices: []DeviceOffer{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.machine, func(t *testing.T) {
			o := tt.policy.Offer(machines[tt.machine])
			if o.VRAMBytes != tt.vram || o.RAMBytes != tt.ram || o.TotalBytes != tt.vram+tt.ram || o.Capped != tt.capped {
				t.Errorf("Offer = %s capped=%v; want %s VRAM + %s RAM capped=%v\n%s", o, o.Capped,
					FormatSize(tt.vram), FormatSize(tt.ram), tt.capped, strings.Join(o.Explanation, "\n"))
			}
			if !reflect.DeepEqual(o.Devices, tt.devices) {
				t.Errorf("Devices:\n got %+v\nwant %+v", o.Devices, tt.devices)
			}
			all := strings.Join(o.Explanation, "\n")
			for _, e := range tt.explains {
				if !strings.Contains(all, e) {
					t.Errorf("explanation lacks %q:\n%s", e, all)
				}
			}
		})
	}
}

func TestWriteTable(t *testing.T) {
	tests := []struct {
		machine string
		want    []string
	}{
		{machine: "no GPU", want: []string{"linux/amd64", "AMD EPYC (2 cores, 2 threads)", "23.5 GiB total, 22.0 GiB available", "none found", "Offer", "11.8 GiB (0 B VRAM + 11.8 GiB RAM)"}},
		{machine: "1 NVIDIA", want: []string{"NVIDIA GeForce RTX 4090", "cuda", "23.0 GiB", "24.0 GiB", "3%", "41C", "550.54.15, CUDA 12.4"}},
		{machine: "2 NVIDIA", want: []string{"0  NVIDIA GeForce RTX 3090", "1  NVIDIA GeForce RTX 3090", "98%", "77C"}},
		{machine: "AMD", want: []string{"Raphael", "?", "amdgpu", "VRAM unknown, not offered"}},
		{machine: "Apple Silicon", want: []string{"darwin/arm64", "Apple M2 Pro GPU", "metal", "32.0 GiB (unified)", "unified memory"}},
	}
	for _, tt := range tests {
		t.Run(tt.machine, func(t *testing.T) {
			r := machines[tt.machine]
			var buf bytes.Buffer
			if err := WriteTable(&buf, r, DefaultOfferPolicy().Offer(r)); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("table lacks %q:\n%s", w, buf.String())
				}
			}
		})
	}
}

func TestReportJSON(t *testing.T) {
	b, err := json.Marshal(machines["1 NVIDIA"])
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"cpu":`, `"physical_cores":16`, `"logical_cores":32`, `"total_bytes":`, `"available_bytes":`,
		`"gpus":[`, `"vram_total":`, `"vram_free":`, `"vram_used":`, `"vram_known":true`, `"temperature_c":41`,
		`"cuda_version":"12.4"`, `"unified_memory":false`, `"probed_at":`, `"pci_address":"0000:01:00.0"`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("JSON lacks %s: %s", key, b)
		}
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, machines["1 NVIDIA"]) {
		t.Errorf("JSON round trip: %+v, %v", back, err)
	}
}
