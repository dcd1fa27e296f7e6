//go:build linux && cgo

package hw

import (
	"context"
	"reflect"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

// nvmlCard is what a device answers; v1Only devices lack GetMemoryInfo_v2.
type nvmlCard struct {
	name, uuid, busID string
	total, used       uint64
	reserved          uint64
	util, temp        uint32
	v1Only            bool
	memClock, busBits uint32 // MHz and bits; 0: not supported
}

func (c nvmlCard) device() *mock.Device {
	return &mock.Device{
		GetNameFunc: func() (string, nvml.Return) { return c.name, nvml.SUCCESS },
		GetUUIDFunc: func() (string, nvml.Return) { return c.uuid, nvml.SUCCESS },
		GetPciInfoFunc: func() (nvml.PciInfo, nvml.Return) {
			var p nvml.PciInfo
			for i := 0; i < len(c.busID) && i < len(p.BusId)-1; i++ {
				p.BusId[i] = int8(c.busID[i])
			}
			return p, nvml.SUCCESS
		},
		GetMemoryInfo_v2Func: func() (nvml.Memory_v2, nvml.Return) {
			if c.v1Only {
				return nvml.Memory_v2{}, nvml.ERROR_FUNCTION_NOT_FOUND
			}
			return nvml.Memory_v2{Total: c.total, Reserved: c.reserved, Used: c.used, Free: c.total - c.reserved - c.used}, nvml.SUCCESS
		},
		GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
			return nvml.Memory{Total: c.total, Used: c.used + c.reserved, Free: c.total - c.reserved - c.used}, nvml.SUCCESS
		},
		GetUtilizationRatesFunc: func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: c.util}, nvml.SUCCESS
		},
		GetTemperatureFunc: func(s nvml.TemperatureSensors) (uint32, nvml.Return) {
			if s != nvml.TEMPERATURE_GPU {
				return 0, nvml.ERROR_INVALID_ARGUMENT
			}
			return c.temp, nvml.SUCCESS
		},
		GetMaxClockInfoFunc: func(ct nvml.ClockType) (uint32, nvml.Return) {
			if ct != nvml.CLOCK_MEM {
				return 0, nvml.ERROR_INVALID_ARGUMENT
			}
			if c.memClock == 0 {
				return 0, nvml.ERROR_NOT_SUPPORTED
			}
			return c.memClock, nvml.SUCCESS
		},
		GetMemoryBusWidthFunc: func() (uint32, nvml.Return) {
			if c.busBits == 0 {
				return 0, nvml.ERROR_NOT_SUPPORTED
			}
			return c.busBits, nvml.SUCCESS
		},
	}
}

// fakeNVML is a driver with the given cards. Only the calls hw makes are
// set: any other call panics, as a call into an unloaded library would
// kill the process.
func fakeNVML(cards ...nvmlCard) *mock.Interface {
	return &mock.Interface{
		InitFunc:                       func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc:                   func() nvml.Return { return nvml.SUCCESS },
		SystemGetDriverVersionFunc:     func() (string, nvml.Return) { return "550.54.15", nvml.SUCCESS },
		SystemGetCudaDriverVersionFunc: func() (int, nvml.Return) { return 12040, nvml.SUCCESS },
		DeviceGetCountFunc:             func() (int, nvml.Return) { return len(cards), nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			if i >= len(cards) {
				return nil, nvml.ERROR_INVALID_ARGUMENT
			}
			return cards[i].device(), nvml.SUCCESS
		},
	}
}

var (
	// The RTX 4090's GDDR6X: 10501 MHz over 384 bits, 1008 GB/s.
	rtx4090 = nvmlCard{name: "NVIDIA GeForce RTX 4090", uuid: "GPU-5b2c3d4e-0000-1111-2222-333344445555", busID: "00000000:01:00.0",
		total: 24564 * MiB, reserved: 334 * MiB, used: 1020 * MiB, util: 3, temp: 41, memClock: 10501, busBits: 384}
	rtx3090a = nvmlCard{name: "NVIDIA GeForce RTX 3090", uuid: "GPU-aaaa", busID: "00000000:01:00.0",
		total: 24576 * MiB, used: 22000 * MiB, util: 98, temp: 77, v1Only: true}
	rtx3090b = nvmlCard{name: "NVIDIA GeForce RTX 3090", uuid: "GPU-bbbb", busID: "00000000:4C:00.0",
		total: 24576 * MiB, used: 300 * MiB, util: 0, temp: 35, v1Only: true}
)

func nvGPU(c nvmlCard, addr string) GPU {
	used := c.used
	if c.v1Only {
		used += c.reserved
	}
	return GPU{
		Vendor: VendorNVIDIA, Name: c.name, UUID: c.uuid, PCIAddress: addr, Backend: BackendCUDA,
		VRAMTotal: c.total, VRAMFree: c.total - c.reserved - c.used, VRAMUsed: used, VRAMKnown: true,
		Utilization: int(c.util), TemperatureC: int(c.temp), Driver: "550.54.15", CUDAVersion: "12.4",
		BandwidthBytesPerSec: float64(c.memClock) * 1e6 * 2 * float64(c.busBits) / 8,
	}
}

func TestNVMLBandwidth(t *testing.T) {
	r := openNVMLLib(fakeNVML(rtx4090, rtx3090a), discard())
	defer r.Close()
	gpus, err := r.GPUs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := gpus[0].BandwidthBytesPerSec; got < 1.007e12 || got > 1.009e12 {
		t.Errorf("RTX 4090 bandwidth = %.4g B/s, want 1.008e12", got)
	}
	if got := gpus[1].BandwidthBytesPerSec; got != 0 {
		t.Errorf("a card that does not report its memory clock: bandwidth %v, want unknown (0)", got)
	}
}

func TestNVMLReader(t *testing.T) {
	tests := []struct {
		name  string
		cards []nvmlCard
		want  []GPU
	}{
		{name: "driver, no GPU", want: []GPU{}},
		{name: "1 NVIDIA", cards: []nvmlCard{rtx4090}, want: []GPU{nvGPU(rtx4090, "0000:01:00.0")}},
		{
			name:  "2 NVIDIA, old driver without memory info v2",
			cards: []nvmlCard{rtx3090a, rtx3090b},
			want:  []GPU{nvGPU(rtx3090a, "0000:01:00.0"), nvGPU(rtx3090b, "0000:4c:00.0")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lib := fakeNVML(tt.cards...)
			r := openNVMLLib(lib, discard())
			got, err := r.GPUs(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("GPUs:\n got %+v\nwant %+v", got, tt.want)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if n := len(lib.ShutdownCalls()); n != 1 {
				t.Fatalf("Shutdown called %d times, want 1", n)
			}
			if _, err := r.GPUs(context.Background()); err == nil {
				t.Fatal("GPUs after Close: want an error")
			}
		})
	}
}

// Without a driver Init fails and nothing else may be called: the mock
// panics on any call other than Init.
func TestNVMLWithoutDriverCallsNothingElse(t *testing.T) {
	for _, ret := range []nvml.Return{nvml.ERROR_LIBRARY_NOT_FOUND, nvml.ERROR_DRIVER_NOT_LOADED, nvml.ERROR_NO_PERMISSION} {
		lib := &mock.Interface{InitFunc: func() nvml.Return { return ret }}
		r := openNVMLLib(lib, discard())
		gpus, err := r.GPUs(context.Background())
		if err != nil || len(gpus) != 0 {
			t.Errorf("Init %v: GPUs = %v, %v; want none and no error", ret, gpus, err)
		}
		if err := r.Close(); err != nil {
			t.Errorf("Init %v: Close = %v", ret, err)
		}
	}
}

// The real library on a machine without a driver: Init must fail cleanly.
// On a machine with a driver this lists its GPUs.
func TestNVMLRealLibrary(t *testing.T) {
	r, err := openNVML(context.Background(), discard())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	gpus, err := r.GPUs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("NVML sees %d GPUs", len(gpus))
}

func TestNVMLDeviceErrors(t *testing.T) {
	lib := fakeNVML(rtx4090)
	lib.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_GPU_IS_LOST }
	r := openNVMLLib(lib, discard())
	defer r.Close()
	if _, err := r.GPUs(context.Background()); err == nil {
		t.Fatal("GPUs with a failing device count: want an error")
	}

	broken := &mock.Device{
		GetNameFunc:             func() (string, nvml.Return) { return "", nvml.ERROR_GPU_IS_LOST },
		GetUUIDFunc:             func() (string, nvml.Return) { return "", nvml.ERROR_GPU_IS_LOST },
		GetPciInfoFunc:          func() (nvml.PciInfo, nvml.Return) { return nvml.PciInfo{}, nvml.ERROR_GPU_IS_LOST },
		GetMemoryInfo_v2Func:    func() (nvml.Memory_v2, nvml.Return) { return nvml.Memory_v2{}, nvml.ERROR_GPU_IS_LOST },
		GetMemoryInfoFunc:       func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, nvml.ERROR_GPU_IS_LOST },
		GetUtilizationRatesFunc: func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_GPU_IS_LOST },
		GetTemperatureFunc:      func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, nvml.ERROR_GPU_IS_LOST },
		GetMaxClockInfoFunc:     func(nvml.ClockType) (uint32, nvml.Return) { return 0, nvml.ERROR_GPU_IS_LOST },
	}
	lib = fakeNVML(rtx4090, rtx4090)
	lib.DeviceGetHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i == 0 {
			return nil, nvml.ERROR_GPU_IS_LOST
		}
		return broken, nvml.SUCCESS
	}
	r2 := openNVMLLib(lib, discard())
	defer r2.Close()
	got, err := r2.GPUs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []GPU{{Vendor: VendorNVIDIA, Name: "NVIDIA GPU 1", Backend: BackendCUDA, Utilization: Unknown, TemperatureC: Unknown, Driver: "550.54.15", CUDAVersion: "12.4"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GPUs with a lost device:\n got %+v\nwant %+v", got, want)
	}
}
