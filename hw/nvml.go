//go:build linux && cgo

package hw

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// openNVML loads libnvidia-ml and returns a reader of NVIDIA GPUs.
func openNVML(ctx context.Context, log *slog.Logger) (GPUReader, error) {
	return openNVMLLib(nvml.New(), log), nil
}

// openNVMLLib initialises lib. Without a driver Init fails, which is normal:
// one debug line and a reader that reports nothing. No other NVML call may
// be made after a failed Init; the library is not loaded and the process
// would die on an undefined symbol.
func openNVMLLib(lib nvml.Interface, log *slog.Logger) GPUReader {
	if ret := lib.Init(); ret != nvml.SUCCESS {
		log.Debug("hw: NVML unavailable, no NVIDIA GPUs listed through it", "reason", nvmlErr(ret))
		return noGPUs{}
	}
	r := &nvmlReader{lib: lib, log: log}
	if v, ret := lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		r.driver = v
	}
	if v, ret := lib.SystemGetCudaDriverVersion(); ret == nvml.SUCCESS && v > 0 {
		r.cuda = fmt.Sprintf("%d.%d", v/1000, v%1000/10)
	}
	return r
}

// nvmlReader holds an initialised NVML until Close.
type nvmlReader struct {
	lib    nvml.Interface
	log    *slog.Logger
	driver string
	cuda   string

	mu     sync.Mutex
	closed bool
}

var _ GPUReader = (*nvmlReader)(nil)

// GPUs reads every device NVML sees. A device that fails to answer a
// query keeps that field unknown; failing to count devices is an error.
func (r *nvmlReader) GPUs(ctx context.Context) ([]GPU, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("NVML reader is closed")
	}
	n, ret := r.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("NVML device count: %s", nvmlErr(ret))
	}
	gpus := make([]GPU, 0, n)
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dev, ret := r.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			r.log.Debug("hw: NVML device handle", "index", i, "reason", nvmlErr(ret))
			continue
		}
		gpus = append(gpus, r.device(i, dev))
	}
	return gpus, nil
}

func (r *nvmlReader) device(i int, dev nvml.Device) GPU {
	g := GPU{
		Vendor:       VendorNVIDIA,
		Name:         fmt.Sprintf("NVIDIA GPU %d", i),
		Backend:      BackendCUDA,
		Utilization:  Unknown,
		TemperatureC: Unknown,
		Driver:       r.driver,
		CUDAVersion:  r.cuda,
	}
	if v, ret := dev.GetName(); ret == nvml.SUCCESS && v != "" {
		g.Name = v
	}
	if v, ret := dev.GetUUID(); ret == nvml.SUCCESS {
		g.UUID = v
	}
	if v, ret := dev.GetPciInfo(); ret == nvml.SUCCESS {
		g.PCIAddress = normPCIAddress(int8String(v.BusId[:]))
	}
	// v2 reports memory the driver reserves separately, as nvidia-smi
	// does; older drivers only have v1, whose Used includes it.
	if m, ret := dev.GetMemoryInfo_v2(); ret == nvml.SUCCESS && m.Total > 0 {
		g.VRAMTotal, g.VRAMFree, g.VRAMUsed, g.VRAMKnown = m.Total, m.Free, m.Used, true
	} else if m, ret := dev.GetMemoryInfo(); ret == nvml.SUCCESS && m.Total > 0 {
		g.VRAMTotal, g.VRAMFree, g.VRAMUsed, g.VRAMKnown = m.Total, m.Free, m.Used, true
	} else {
		r.log.Debug("hw: NVML memory info", "index", i, "reason", nvmlErr(ret))
	}
	// Peak bandwidth: the memory clock (MHz) moves two transfers a cycle
	// over a bus this many bits wide.
	if clock, ret := dev.GetMaxClockInfo(nvml.CLOCK_MEM); ret == nvml.SUCCESS && clock > 0 {
		if width, ret := dev.GetMemoryBusWidth(); ret == nvml.SUCCESS && width > 0 {
			g.BandwidthBytesPerSec = float64(clock) * 1e6 * 2 * float64(width) / 8
		}
	}
	if u, ret := dev.GetUtilizationRates(); ret == nvml.SUCCESS {
		g.Utilization = int(u.Gpu)
	}
	if t, ret := dev.GetTemperature(nvml.TEMPERATURE_GPU); ret == nvml.SUCCESS {
		g.TemperatureC = int(t)
	}
	return g
}

// Close shuts NVML down once.
func (r *nvmlReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if ret := r.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("NVML shutdown: %s", nvmlErr(ret))
	}
	return nil
}

// nvmlErr names a return code with the library's error string.
func nvmlErr(ret nvml.Return) string {
	return fmt.Sprintf("%s (%d)", ret.Error(), int32(ret))
}

// int8String reads a NUL-terminated C char array.
func int8String(cs []int8) string {
	var b strings.Builder
	for _, c := range cs {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String()
}
