package hw

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"unsafe"
)

// On Windows, NVML is nvml.dll, which NVIDIA's driver installs in System32.
// It is loaded at run time (no cgo), so a machine without the driver reports
// no NVIDIA GPUs through it and nothing fails. It is how NVIDIA GPUs are
// known where WMI fails or says little (no memory past 4 GiB, the driver
// version in Windows' numbering).

// nvmlAPI is the part of NVML the reader uses; tests give a fake.
type nvmlAPI interface {
	Init() bool
	Shutdown()
	DriverVersion() (string, bool)
	CUDAVersion() (int32, bool) // e.g. 12040
	Count() (uint32, bool)
	Handle(i uint32) (uintptr, bool)
	Name(dev uintptr) (string, bool)
	UUID(dev uintptr) (string, bool)
	Memory(dev uintptr) (total, free, used uint64, ok bool)
	MemClockMHz(dev uintptr) (uint32, bool)
	BusWidth(dev uintptr) (uint32, bool)
}

// nvmlDLL calls into nvml.dll.
type nvmlDLL struct{ dll *syscall.LazyDLL }

func (d nvmlDLL) ok(name string, args ...uintptr) bool {
	p := d.dll.NewProc(name)
	if p.Find() != nil {
		return false
	}
	r, _, _ := p.Call(args...)
	return r == 0 // NVML_SUCCESS
}

func (d nvmlDLL) Init() bool { return d.ok("nvmlInit_v2") }
func (d nvmlDLL) Shutdown()  { d.ok("nvmlShutdown") }

func (d nvmlDLL) DriverVersion() (string, bool) {
	var b [96]byte
	ok := d.ok("nvmlSystemGetDriverVersion", uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return cString(b[:]), ok
}

func (d nvmlDLL) CUDAVersion() (int32, bool) {
	var v int32
	ok := d.ok("nvmlSystemGetCudaDriverVersion_v2", uintptr(unsafe.Pointer(&v)))
	return v, ok
}

func (d nvmlDLL) Count() (uint32, bool) {
	var n uint32
	ok := d.ok("nvmlDeviceGetCount_v2", uintptr(unsafe.Pointer(&n)))
	return n, ok
}

func (d nvmlDLL) Handle(i uint32) (uintptr, bool) {
	var h uintptr
	ok := d.ok("nvmlDeviceGetHandleByIndex_v2", uintptr(i), uintptr(unsafe.Pointer(&h)))
	return h, ok
}

func (d nvmlDLL) str(name string, dev uintptr) (string, bool) {
	var b [96]byte
	ok := d.ok(name, dev, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return cString(b[:]), ok
}

func (d nvmlDLL) Name(dev uintptr) (string, bool) { return d.str("nvmlDeviceGetName", dev) }
func (d nvmlDLL) UUID(dev uintptr) (string, bool) { return d.str("nvmlDeviceGetUUID", dev) }

func (d nvmlDLL) Memory(dev uintptr) (total, free, used uint64, ok bool) {
	var m struct{ Total, Free, Used uint64 } // nvmlMemory_t
	ok = d.ok("nvmlDeviceGetMemoryInfo", dev, uintptr(unsafe.Pointer(&m)))
	return m.Total, m.Free, m.Used, ok
}

func (d nvmlDLL) MemClockMHz(dev uintptr) (uint32, bool) {
	var v uint32
	ok := d.ok("nvmlDeviceGetMaxClockInfo", dev, 2 /* NVML_CLOCK_MEM */, uintptr(unsafe.Pointer(&v)))
	return v, ok
}

func (d nvmlDLL) BusWidth(dev uintptr) (uint32, bool) {
	var v uint32
	ok := d.ok("nvmlDeviceGetMemoryBusWidth", dev, uintptr(unsafe.Pointer(&v)))
	return v, ok
}

// openNVML loads nvml.dll and returns a reader of NVIDIA GPUs; without the
// library, one that reports none.
func openNVML(ctx context.Context, log *slog.Logger) (GPUReader, error) {
	dll := syscall.NewLazyDLL("nvml.dll")
	if err := dll.Load(); err != nil {
		log.Debug("hw: nvml.dll not found, no NVIDIA GPUs listed through NVML", "err", err)
		return noGPUs{}, nil
	}
	return openNVMLAPI(nvmlDLL{dll}, log), nil
}

func openNVMLAPI(api nvmlAPI, log *slog.Logger) GPUReader {
	if !api.Init() {
		log.Debug("hw: NVML did not initialise: no NVIDIA GPUs listed through it")
		return noGPUs{}
	}
	r := &nvmlWinReader{api: api}
	r.driver, _ = api.DriverVersion()
	if v, ok := api.CUDAVersion(); ok && v > 0 {
		r.cuda = fmt.Sprintf("%d.%d", v/1000, v%1000/10)
	}
	return r
}

type nvmlWinReader struct {
	api    nvmlAPI
	driver string
	cuda   string

	mu     sync.Mutex
	closed bool
}

var _ GPUReader = (*nvmlWinReader)(nil)

func (r *nvmlWinReader) GPUs(ctx context.Context) ([]GPU, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("NVML reader is closed")
	}
	n, ok := r.api.Count()
	if !ok {
		return nil, fmt.Errorf("NVML could not count the devices")
	}
	gpus := make([]GPU, 0, n)
	for i := range n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dev, ok := r.api.Handle(i)
		if !ok {
			continue
		}
		g := GPU{Vendor: VendorNVIDIA, Name: fmt.Sprintf("NVIDIA GPU %d", i), Backend: BackendCUDA,
			Utilization: Unknown, TemperatureC: Unknown, Driver: r.driver, CUDAVersion: r.cuda}
		if s, ok := r.api.Name(dev); ok && s != "" {
			g.Name = s
		}
		g.UUID, _ = r.api.UUID(dev)
		if total, free, used, ok := r.api.Memory(dev); ok && total > 0 {
			g.VRAMTotal, g.VRAMFree, g.VRAMUsed, g.VRAMKnown = total, free, used, true
		}
		if clock, ok := r.api.MemClockMHz(dev); ok && clock > 0 {
			if width, ok := r.api.BusWidth(dev); ok && width > 0 {
				g.BandwidthBytesPerSec = float64(clock) * 1e6 * 2 * float64(width) / 8
			}
		}
		gpus = append(gpus, g)
	}
	return gpus, nil
}

func (r *nvmlWinReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.api.Shutdown()
	}
	return nil
}

// cString reads a NUL-terminated C string.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
