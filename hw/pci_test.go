package hw

import (
	"errors"
	"reflect"
	"testing"

	"github.com/jaypipes/ghw"
	"github.com/jaypipes/ghw/pkg/pci"
	"github.com/jaypipes/pcidb"
)

// pciDev builds a ghw PCI device as ghw reports it from sysfs and pci.ids;
// class is the two-byte class code, e.g. "0300".
func pciDev(addr, class, vendor, product, productName, driver string) *pci.Device {
	return &pci.Device{
		Address:  addr,
		Vendor:   &pcidb.Vendor{ID: vendor, Name: "vendor " + vendor},
		Product:  &pcidb.Product{ID: product, Name: productName},
		Class:    &pcidb.Class{ID: class[:2]},
		Subclass: &pcidb.Subclass{ID: class[2:]},
		Driver:   driver,
	}
}

func pciGPU(vendor, name, addr, backend, driver string) GPU {
	return GPU{Vendor: vendor, Name: name, PCIAddress: addr, Backend: backend, Driver: driver, Utilization: Unknown, TemperatureC: Unknown}
}

func TestGPUsFromPCI(t *testing.T) {
	bridge := pciDev("0000:00:00.0", "0600", "8086", "29c0", "82G33/G31/P35/P31 Express DRAM Controller", "")
	nic := pciDev("0000:05:00.0", "0200", "1af4", "1041", "Virtio 1.0 network device", "virtio-pci")
	tests := []struct {
		name string
		devs []*pci.Device
		want []GPU
	}{
		{
			name: "no GPU: a VM with a virtio display and an ASPEED BMC",
			devs: []*pci.Device{bridge, nic,
				pciDev("0000:04:00.0", "0300", "1af4", "1050", "Virtio 1.0 GPU", "virtio-pci"),
				pciDev("0000:07:00.0", "0300", "1a03", "2000", "ASPEED Graphics Family", "ast"),
				nil,
			},
		},
		{
			name: "1 NVIDIA",
			devs: []*pci.Device{bridge, pciDev("0000:01:00.0", "0300", "10de", "2684", "AD102 [GeForce RTX 4090]", "nvidia")},
			want: []GPU{pciGPU(VendorNVIDIA, "GeForce RTX 4090", "0000:01:00.0", BackendCUDA, "nvidia")},
		},
		{
			name: "2 NVIDIA, one passed through to a VM",
			devs: []*pci.Device{
				pciDev("0000:01:00.0", "0302", "10DE", "20b5", "GA100 [A100 PCIe 80GB]", "nvidia"),
				pciDev("0000:41:00.0", "0302", "10de", "20b5", "GA100 [A100 PCIe 80GB]", "vfio-pci"),
			},
			want: []GPU{
				pciGPU(VendorNVIDIA, "A100 PCIe 80GB", "0000:01:00.0", BackendCUDA, "nvidia"),
				pciGPU(VendorNVIDIA, "A100 PCIe 80GB", "0000:41:00.0", BackendNone, "vfio-pci"),
			},
		},
		{
			name: "AMD discrete and Instinct accelerator",
			devs: []*pci.Device{
				pciDev("0000:03:00.0", "0300", "1002", "744c", "Navi 31 [Radeon RX 7900 XT/7900 XTX/7900M]", "amdgpu"),
				pciDev("0000:83:00.0", "1200", "1002", "74a1", "Aqua Vanjaram [Instinct MI300X]", "amdgpu"),
				pciDev("0000:03:00.1", "0403", "1002", "ab30", "Navi 31 HDMI/DP Audio", "snd_hda_intel"),
			},
			want: []GPU{
				pciGPU(VendorAMD, "Radeon RX 7900 XT/7900 XTX/7900M", "0000:03:00.0", BackendVulkan, "amdgpu"),
				pciGPU(VendorAMD, "Instinct MI300X", "0000:83:00.0", BackendVulkan, "amdgpu"),
			},
		},
		{
			name: "Intel iGPU and NVIDIA on nouveau, unknown to pci.ids",
			devs: []*pci.Device{
				pciDev("0000:00:02.0", "0300", "8086", "a780", "Raptor Lake-S GT1 [UHD Graphics 770]", "i915"),
				pciDev("0000:01:00.0", "0300", "10de", "ffff", "unknown", "nouveau"),
			},
			want: []GPU{
				pciGPU(VendorIntel, "UHD Graphics 770", "0000:00:02.0", BackendVulkan, "i915"),
				pciGPU(VendorNVIDIA, "PCI device 10de:ffff", "0000:01:00.0", BackendNone, "nouveau"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gpusFromPCI(tt.devs); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("gpusFromPCI:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestGPUsFromCards(t *testing.T) {
	card := func(manufacturer, description, driver string) *ghw.GraphicsCard {
		return &ghw.GraphicsCard{DeviceInfo: &pci.Device{
			Vendor:  &pcidb.Vendor{ID: manufacturer, Name: manufacturer},
			Product: &pcidb.Product{Name: description},
			Driver:  driver,
		}}
	}
	cards := []*ghw.GraphicsCard{
		card("NVIDIA", "NVIDIA GeForce RTX 3060", "31.0.15.5222"),
		card("Advanced Micro Devices, Inc.", "AMD Radeon RX 6800 XT", "31.0.24027.1012"),
		card("Intel Corporation", "Intel(R) UHD Graphics 630", "31.0.101.2115"),
		card("(Standard display types)", "Microsoft Basic Display Adapter", "10.0.19041.1"),
		card("NVIDIA", "", ""),
		nil,
		{},
	}
	want := []GPU{
		{Vendor: VendorNVIDIA, Name: "NVIDIA GeForce RTX 3060", Backend: BackendCUDA, Driver: "31.0.15.5222", Utilization: Unknown, TemperatureC: Unknown},
		{Vendor: VendorAMD, Name: "AMD Radeon RX 6800 XT", Backend: BackendVulkan, Driver: "31.0.24027.1012", Utilization: Unknown, TemperatureC: Unknown},
		{Vendor: VendorIntel, Name: "Intel(R) UHD Graphics 630", Backend: BackendVulkan, Driver: "31.0.101.2115", Utilization: Unknown, TemperatureC: Unknown},
		{Vendor: VendorNVIDIA, Name: "NVIDIA GPU", Backend: BackendNone, Utilization: Unknown, TemperatureC: Unknown},
	}
	if got := gpusFromCards(cards); !reflect.DeepEqual(got, want) {
		t.Fatalf("gpusFromCards:\n got %+v\nwant %+v", got, want)
	}
}

func TestReadAMDGPU(t *testing.T) {
	dir := "/sys/bus/pci/devices/0000:03:00.0"
	tests := []struct {
		name  string
		files map[string]string
		want  GPU
	}{
		{
			name: "RX 7900 XTX",
			files: map[string]string{
				"mem_info_vram_total": "25753026560\n",
				"mem_info_vram_used":  "1610612736\n",
				"gpu_busy_percent":    "7\n",
			},
			want: GPU{VRAMTotal: 25753026560, VRAMUsed: 1610612736, VRAMFree: 25753026560 - 1610612736, VRAMKnown: true, Utilization: 7, TemperatureC: Unknown},
		},
		{
			name:  "old kernel without the files",
			files: map[string]string{},
			want:  GPU{Utilization: Unknown, TemperatureC: Unknown},
		},
		{
			name:  "garbage",
			files: map[string]string{"mem_info_vram_total": "lots", "mem_info_vram_used": "1", "gpu_busy_percent": "250"},
			want:  GPU{Utilization: Unknown, TemperatureC: Unknown},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read := func(name string) ([]byte, error) {
				for f, v := range tt.files {
					if name == dir+"/"+f {
						return []byte(v), nil
					}
				}
				return nil, errors.New("no such file " + name)
			}
			g := GPU{Utilization: Unknown, TemperatureC: Unknown}
			readAMDGPU(read, dir, &g)
			if !reflect.DeepEqual(g, tt.want) {
				t.Fatalf("readAMDGPU:\n got %+v\nwant %+v", g, tt.want)
			}
		})
	}
}

func TestMergeGPUs(t *testing.T) {
	nv := func(addr, uuid string) GPU {
		return GPU{Vendor: VendorNVIDIA, Name: "NVIDIA GeForce RTX 3090", UUID: uuid, PCIAddress: addr, Backend: BackendCUDA, VRAMKnown: true}
	}
	amd := pciGPU(VendorAMD, "Radeon RX 6800", "0000:0a:00.0", BackendVulkan, "amdgpu")
	pci1 := pciGPU(VendorNVIDIA, "GeForce RTX 3090", "0000:01:00.0", BackendCUDA, "nvidia")
	pci2 := pciGPU(VendorNVIDIA, "GeForce RTX 3090", "0000:02:00.0", BackendCUDA, "nvidia")
	tests := []struct {
		name        string
		nvml, other []GPU
		want        []GPU
	}{
		{name: "nothing", want: []GPU{}},
		{name: "no driver: PCI entries stay", other: []GPU{pci1, amd}, want: []GPU{pci1, amd}},
		{
			name:  "NVML and PCI see the same two cards",
			nvml:  []GPU{nv("00000000:01:00.0", "GPU-a"), nv("00000000:02:00.0", "GPU-b")},
			other: []GPU{pci1, amd, pci2},
			want:  []GPU{nv("0000:01:00.0", "GPU-a"), nv("0000:02:00.0", "GPU-b"), amd},
		},
		{
			name:  "NVML without addresses hides every NVIDIA PCI entry",
			nvml:  []GPU{nv("", "GPU-a")},
			other: []GPU{pci1, pci2, amd},
			want:  []GPU{nv("", "GPU-a"), amd},
		},
		{
			name:  "a card NVML does not see (vfio) stays",
			nvml:  []GPU{nv("0000:01:00.0", "GPU-a")},
			other: []GPU{pci1, pci2},
			want:  []GPU{nv("0000:01:00.0", "GPU-a"), pci2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range tt.nvml {
				tt.nvml[i].PCIAddress = normPCIAddress(tt.nvml[i].PCIAddress)
			}
			if got := mergeGPUs(tt.nvml, tt.other); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("mergeGPUs:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestNormPCIAddress(t *testing.T) {
	for in, want := range map[string]string{
		"00000000:01:00.0": "0000:01:00.0",
		"0000:0A:00.0":     "0000:0a:00.0",
		"1:02:00.0":        "0001:02:00.0",
		"00010000:02:00.0": "10000:02:00.0",
		"":                 "",
		"PCI\\VEN_10DE":    "pci\\ven_10de",
	} {
		if got := normPCIAddress(in); got != want {
			t.Errorf("normPCIAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMarketingName(t *testing.T) {
	for _, tt := range []struct{ product, want string }{
		{"GP100GL [Tesla P100 PCIe 16GB]", "Tesla P100 PCIe 16GB"},
		{"Virtio 1.0 GPU", "Virtio 1.0 GPU"},
		{"Something [odd", "Something [odd"},
		{"", "PCI device 10de:1234"},
		{"unknown", "PCI device 10de:1234"},
	} {
		if got := marketingName(tt.product, "10de", "1234"); got != tt.want {
			t.Errorf("marketingName(%q) = %q, want %q", tt.product, got, tt.want)
		}
	}
}
