package hw

import (
	"context"
	"log/slog"
	"testing"
)

// fakeNVML answers as nvml.dll does on a machine with one RTX 4090 and
// driver 560.94: the Windows reader is tested here, the library itself only
// where NVIDIA's driver is.
type fakeNVML struct{ inited, shut bool }

func (f *fakeNVML) Init() bool                      { f.inited = true; return true }
func (f *fakeNVML) Shutdown()                       { f.shut = true }
func (f *fakeNVML) DriverVersion() (string, bool)   { return "560.94", true }
func (f *fakeNVML) CUDAVersion() (int32, bool)      { return 12060, true }
func (f *fakeNVML) Count() (uint32, bool)           { return 1, true }
func (f *fakeNVML) Handle(i uint32) (uintptr, bool) { return 0x1234, i == 0 }
func (f *fakeNVML) Name(uintptr) (string, bool)     { return "NVIDIA GeForce RTX 4090", true }
func (f *fakeNVML) UUID(uintptr) (string, bool)     { return "GPU-8d6f1c2e", true }
func (f *fakeNVML) Memory(uintptr) (uint64, uint64, uint64, bool) {
	return 24 << 30, 20 << 30, 4 << 30, true
}
func (f *fakeNVML) MemClockMHz(uintptr) (uint32, bool) { return 10501, true }
func (f *fakeNVML) BusWidth(uintptr) (uint32, bool)    { return 384, true }

func TestNVMLOnWindows(t *testing.T) {
	f := &fakeNVML{}
	r := openNVMLAPI(f, slog.New(slog.DiscardHandler))
	gpus, err := r.GPUs(context.Background())
	if err != nil || len(gpus) != 1 {
		t.Fatalf("GPUs = %+v, %v", gpus, err)
	}
	g := gpus[0]
	if g.Name != "NVIDIA GeForce RTX 4090" || g.Driver != "560.94" || g.CUDAVersion != "12.6" || g.VRAMTotal != 24<<30 || !g.VRAMKnown || g.UUID != "GPU-8d6f1c2e" {
		t.Errorf("GPU = %+v", g)
	}
	if want := 10501e6 * 2 * 384 / 8; g.BandwidthBytesPerSec != want {
		t.Errorf("bandwidth %g, want %g", g.BandwidthBytesPerSec, want)
	}
	r.Close()
	if !f.shut {
		t.Error("Close did not shut NVML down")
	}
}

// Without nvml.dll (no NVIDIA driver, as under Wine), the reader lists
// nothing and nothing fails.
func TestNVMLMissingOnWindows(t *testing.T) {
	r, err := openNVML(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if gpus, err := r.GPUs(context.Background()); err != nil || (len(gpus) > 0 && gpus[0].Vendor != VendorNVIDIA) {
		t.Errorf("GPUs = %+v, %v", gpus, err)
	}
}
