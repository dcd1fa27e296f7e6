package hw

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jaypipes/ghw/pkg/snapshot"
	"github.com/jaypipes/pcidb"
)

// p100Root returns the root of ghw's snapshot of a VM with a Tesla P100
// (8 Xeon threads, a virtio display, 29 GiB), unpacked once per test run.
func p100Root(t *testing.T) string {
	t.Helper()
	snapOnce.Do(func() {
		snapDir, snapErr = os.MkdirTemp("", "hw-snapshot-")
		if snapErr == nil {
			snapErr = snapshot.UnpackInto("testdata/snapshots/linux-amd64-accel-nvidia.tar.gz", snapDir)
		}
	})
	if snapErr != nil {
		t.Fatal(snapErr)
	}
	return snapDir
}

var (
	snapOnce sync.Once
	snapDir  string
	snapErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if snapDir != "" {
		os.RemoveAll(snapDir)
	}
	os.Exit(code)
}

func testPCIDB(t *testing.T) *pcidb.PCIDB {
	t.Helper()
	db, err := pcidb.New(pcidb.WithPath("testdata/pci.ids"))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// fakeReader is a GPUReader that counts its use.
type fakeReader struct {
	mu     sync.Mutex
	gpus   []GPU
	err    error
	reads  int
	closed int
}

func (f *fakeReader) GPUs(context.Context) ([]GPU, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return append([]GPU(nil), f.gpus...), f.err
}

func (f *fakeReader) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed++
	return nil
}

func (f *fakeReader) open(context.Context, *slog.Logger) (GPUReader, error) { return f, nil }

var p100Time = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func p100Prober(t *testing.T, nv *fakeReader) *Prober {
	return &Prober{
		Root:       p100Root(t),
		PCIDB:      testPCIDB(t),
		OpenNVIDIA: nv.open,
		Logger:     discard(),
		Now:        func() time.Time { return p100Time },
	}
}

func TestProbeSnapshot(t *testing.T) {
	p100PCI := GPU{
		Vendor: VendorNVIDIA, Name: "Tesla P100 PCIe 16GB", PCIAddress: "0000:06:00.0",
		Backend: BackendCUDA, Driver: "nvidia", Utilization: Unknown, TemperatureC: Unknown,
	}
	p100NVML := GPU{
		Vendor: VendorNVIDIA, Name: "Tesla P100-PCIE-16GB", UUID: "GPU-0f3e6c3a", PCIAddress: "0000:06:00.0",
		Backend: BackendCUDA, VRAMTotal: 16384 * MiB, VRAMFree: 16000 * MiB, VRAMUsed: 384 * MiB, VRAMKnown: true,
		Utilization: 0, TemperatureC: 30, Driver: "535.104.05", CUDAVersion: "12.2",
	}
	base := Report{
		CPU:      CPU{Model: "Intel(R) Xeon(R) CPU E5-2695 v4 @ 2.10GHz", PhysicalCores: 8, LogicalCores: 8},
		Memory:   Memory{TotalBytes: 30601816 * KiB, AvailableBytes: 29987976 * KiB},
		OS:       "linux",
		Arch:     runtimeArch(),
		ProbedAt: p100Time,
	}
	tests := []struct {
		name     string
		nv       *fakeReader
		wantGPUs []GPU
		notes    []string
	}{
		{name: "no NVIDIA driver: the P100 comes from PCI", nv: &fakeReader{}, wantGPUs: []GPU{p100PCI}},
		{name: "NVML sees the P100: one entry, with VRAM", nv: &fakeReader{gpus: []GPU{p100NVML}}, wantGPUs: []GPU{p100NVML}},
		{
			name:     "NVML fails after Init: PCI entry and a note",
			nv:       &fakeReader{err: errors.New("NVML device count: ERROR_GPU_IS_LOST")},
			wantGPUs: []GPU{p100PCI},
			notes:    []string{"NVIDIA GPUs could not be read: NVML device count: ERROR_GPU_IS_LOST"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p100Prober(t, tt.nv).Probe(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := base
			want.GPUs, want.Notes = tt.wantGPUs, tt.notes
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Probe:\n got %+v\nwant %+v", got, want)
			}
			if tt.nv.closed != 1 {
				t.Fatalf("NVIDIA reader closed %d times, want 1", tt.nv.closed)
			}
		})
	}
}

func TestProbeWithoutPCIDB(t *testing.T) {
	t.Setenv("PCIDB_PATH", filepath.Join(t.TempDir(), "missing.ids"))
	p := p100Prober(t, &fakeReader{})
	p.PCIDB = nil
	got, err := p.Probe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.GPUs) != 0 || len(got.Notes) != 1 || !strings.Contains(got.Notes[0], "PCI ID database") {
		t.Fatalf("Probe without pci.ids: GPUs %+v, notes %q", got.GPUs, got.Notes)
	}
}

func TestProbeMemoryUnreadable(t *testing.T) {
	p := p100Prober(t, &fakeReader{})
	p.ReadFile = func(string) ([]byte, error) { return nil, os.ErrPermission }
	if _, err := p.Probe(context.Background()); err == nil || !strings.Contains(err.Error(), "memory") {
		t.Fatalf("Probe with unreadable meminfo: err = %v, want one about memory", err)
	}
}

func TestProbeCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p100Prober(t, &fakeReader{}).Probe(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Probe(canceled) err = %v", err)
	}
}

// An AMD card's memory in use comes from amdgpu's sysfs files, re-read on
// every refresh without another PCI scan.
func TestRefreshAMD(t *testing.T) {
	root := t.TempDir()
	dev := filepath.Join(root, "sys/bus/pci/devices/0000:03:00.0")
	write := func(name, v string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "proc/meminfo"), "MemTotal: 33554432 kB\nMemAvailable: 20971520 kB\n")
	write(filepath.Join(dev, "mem_info_vram_total"), "25753026560\n")
	write(filepath.Join(dev, "mem_info_vram_used"), "1073741824\n")
	write(filepath.Join(dev, "gpu_busy_percent"), "12\n")

	amd := pciGPU(VendorAMD, "Radeon RX 7900 XT/7900 XTX/7900M", "0000:03:00.0", BackendVulkan, "amdgpu")
	p := &Prober{Root: root, Logger: discard(), Now: func() time.Time { return p100Time }}
	prev := Report{Memory: Memory{TotalBytes: 32 * GiB}, GPUs: []GPU{amd}}
	got, osGPUs, err := p.refresh(context.Background(), prev, []GPU{amd}, noGPUs{})
	if err != nil {
		t.Fatal(err)
	}
	wantGPU := amd
	wantGPU.VRAMTotal, wantGPU.VRAMUsed, wantGPU.VRAMFree, wantGPU.VRAMKnown, wantGPU.Utilization = 25753026560, GiB, 25753026560-GiB, true, 12
	want := Report{Memory: Memory{TotalBytes: 32 * GiB, AvailableBytes: 20 * GiB}, GPUs: []GPU{wantGPU}, ProbedAt: p100Time}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(osGPUs, []GPU{wantGPU}) {
		t.Fatalf("refresh:\n got %+v\nwant %+v", got, want)
	}
}
