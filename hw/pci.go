package hw

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/jaypipes/ghw"
	"github.com/jaypipes/ghw/pkg/pci"
)

// gpuVendors are the PCI vendors whose display devices llama.cpp can use.
// Virtual and server-management adapters (virtio, QEMU, VMware, ASPEED,
// Matrox) are display controllers too but never worth reporting.
var gpuVendors = map[string]string{
	"10de": VendorNVIDIA,
	"1002": VendorAMD,
	"8086": VendorIntel,
	"106b": VendorApple,
}

// gpuClasses are the PCI base classes of GPUs: display controllers (VGA,
// 3D, other) and processing accelerators (AMD Instinct and the like).
var gpuClasses = map[string]bool{"03": true, "12": true}

// unusableDrivers are kernel drivers bound to a GPU that no llama.cpp
// backend can use (passed through to a VM, or without compute support).
var unusableDrivers = map[string]bool{
	"":         true,
	"vfio-pci": true,
	"pci-stub": true,
	"nouveau":  true,
	"radeon":   true,
}

// gpusFromPCI keeps the GPUs among PCI devices and describes them. VRAM is
// left unknown: the caller fills it where the OS exposes it.
func gpusFromPCI(devs []*pci.Device) []GPU {
	var out []GPU
	for _, d := range devs {
		if d == nil || d.Vendor == nil || d.Class == nil || !gpuClasses[d.Class.ID] {
			continue
		}
		vendor, ok := gpuVendors[strings.ToLower(d.Vendor.ID)]
		if !ok {
			continue
		}
		productID := ""
		productName := ""
		if d.Product != nil {
			productID, productName = d.Product.ID, d.Product.Name
		}
		out = append(out, GPU{
			Vendor:       vendor,
			Name:         marketingName(productName, d.Vendor.ID, productID),
			PCIAddress:   normPCIAddress(d.Address),
			Backend:      backendFor(vendor, d.Driver),
			Utilization:  Unknown,
			TemperatureC: Unknown,
			Driver:       d.Driver,
		})
	}
	return out
}

// marketingName prefers the bracketed marketing name of a pci.ids entry
// ("GP100GL [Tesla P100 PCIe 16GB]" -> "Tesla P100 PCIe 16GB") and falls
// back to the raw IDs when the database does not know the device.
func marketingName(product, vendorID, productID string) string {
	product = strings.TrimSpace(product)
	if product == "" || strings.EqualFold(product, "unknown") {
		return fmt.Sprintf("PCI device %s:%s", vendorID, productID)
	}
	if i := strings.Index(product, "["); i >= 0 {
		if j := strings.LastIndex(product, "]"); j > i+1 {
			return strings.TrimSpace(product[i+1 : j])
		}
	}
	return product
}

// backendFor judges which llama.cpp backend a GPU can use from its vendor
// and the driver bound to it.
func backendFor(vendor, driver string) string {
	if unusableDrivers[driver] {
		return BackendNone
	}
	switch vendor {
	case VendorNVIDIA:
		return BackendCUDA
	case VendorAMD, VendorIntel:
		return BackendVulkan
	case VendorApple:
		return BackendMetal
	}
	return BackendNone
}

// readAMDGPU fills VRAM and utilization of an amdgpu-driven device from its
// sysfs directory (mem_info_vram_total, mem_info_vram_used,
// gpu_busy_percent). It leaves g alone where the files are missing. Sysfs
// paths are slash paths whatever the OS the code is built for (its tests run
// on Windows too), hence path, not filepath.
func readAMDGPU(read func(string) ([]byte, error), dir string, g *GPU) {
	num := func(name string) (uint64, bool) {
		b, err := read(path.Join(dir, name))
		if err != nil {
			return 0, false
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		return n, err == nil
	}
	total, okT := num("mem_info_vram_total")
	used, okU := num("mem_info_vram_used")
	if okT && okU && total > 0 {
		used = min(used, total)
		g.VRAMTotal, g.VRAMUsed, g.VRAMFree, g.VRAMKnown = total, used, total-used, true
	}
	if busy, ok := num("gpu_busy_percent"); ok && busy <= 100 {
		g.Utilization = int(busy)
	}
}

// gpusFromCards describes ghw's graphics cards on Windows, where WMI gives
// the manufacturer's name instead of a PCI vendor ID, the adapter's name as
// the product name, and the driver version in Driver. Adapters of other
// manufacturers ("Microsoft Basic Display Adapter") are dropped.
func gpusFromCards(cards []*ghw.GraphicsCard) []GPU {
	var out []GPU
	for _, c := range cards {
		if c == nil || c.DeviceInfo == nil || c.DeviceInfo.Vendor == nil {
			continue
		}
		d := c.DeviceInfo
		vendor := vendorFromName(d.Vendor.Name)
		if vendor == "" {
			continue
		}
		name := ""
		if d.Product != nil {
			name = strings.TrimSpace(d.Product.Name)
		}
		if name == "" || strings.EqualFold(name, "unknown") {
			name = vendor + " GPU"
		}
		out = append(out, GPU{
			Vendor:       vendor,
			Name:         name,
			Backend:      backendFor(vendor, d.Driver),
			Utilization:  Unknown,
			TemperatureC: Unknown,
			Driver:       d.Driver,
		})
	}
	return out
}

// vendorFromName maps a manufacturer's name to a GPU vendor, or "".
func vendorFromName(s string) string {
	s = strings.ToLower(s)
	switch {
	case strings.Contains(s, "nvidia"):
		return VendorNVIDIA
	case strings.Contains(s, "advanced micro devices"), strings.HasPrefix(s, "amd"), strings.HasPrefix(s, "ati "):
		return VendorAMD
	case strings.Contains(s, "intel"):
		return VendorIntel
	}
	return ""
}
