package hw

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// fakeMeasure is a measurement that returns bw at once and counts its calls.
func fakeMeasure(bw float64, calls *int) func(context.Context) float64 {
	return func(context.Context) float64 { *calls++; return bw }
}

var desk = Machine{CPU: "AMD Ryzen 7 5800X 8-Core Processor", Cores: 16, RAMGiB: 32}

// A figure learnt once is the figure of the next start, with no second
// measurement, in a file only its owner reads.
func TestBandwidthCacheKeepsTheFigure(t *testing.T) {
	var calls int
	c := BandwidthCache{Path: filepath.Join(t.TempDir(), "potluck", BandwidthFile), Measure: fakeMeasure(42e9, &calls)}
	if _, _, ok := c.Cached(desk); ok {
		t.Fatal("a figure before any was kept")
	}
	bw, err := c.Learn(context.Background(), desk)
	if err != nil || bw != 42e9 {
		t.Fatalf("Learn = %v, %v; want 42e9", bw, err)
	}
	got, at, ok := c.Cached(desk)
	if !ok || got != 42e9 || at.IsZero() {
		t.Errorf("Cached = %v, %v, %v; want 42e9 with its date", got, at, ok)
	}
	if calls != 1 {
		t.Errorf("%d measurements, want 1", calls)
	}
	if fi, err := os.Stat(c.Path); err != nil {
		t.Fatal(err)
	} else if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("the file has mode %v, want 0600", fi.Mode().Perm())
	}
}

// More memory, another CPU or other cores make another machine: its figure
// is measured again, and replaces the old one.
func TestBandwidthCacheMeasuresAChangedMachine(t *testing.T) {
	var calls int
	c := BandwidthCache{Path: filepath.Join(t.TempDir(), BandwidthFile), Measure: fakeMeasure(42e9, &calls)}
	if _, err := c.Learn(context.Background(), desk); err != nil {
		t.Fatal(err)
	}
	upgraded := desk
	upgraded.RAMGiB = 64
	for _, m := range []Machine{upgraded, {CPU: "Intel Core i5-8400", Cores: 16, RAMGiB: 32}, {CPU: desk.CPU, Cores: 8, RAMGiB: 32}} {
		if bw, _, ok := c.Cached(m); ok {
			t.Errorf("%+v got the figure of %+v: %v", m, desk, bw)
		}
	}
	c.Measure = fakeMeasure(55e9, &calls)
	if bw, err := c.Learn(context.Background(), upgraded); err != nil || bw != 55e9 {
		t.Fatalf("Learn after the upgrade = %v, %v", bw, err)
	}
	if bw, _, ok := c.Cached(upgraded); !ok || bw != 55e9 {
		t.Errorf("after the upgrade Cached = %v, %v; want 55e9", bw, ok)
	}
	if _, _, ok := c.Cached(desk); ok {
		t.Error("the machine before the upgrade still has a figure")
	}
	if calls != 2 {
		t.Errorf("%d measurements, want 2", calls)
	}
}

// The same memory as the kernel counts it after an update (a few MiB less)
// is the same machine; a RAM upgrade is not.
func TestMachineOf(t *testing.T) {
	r := Report{CPU: CPU{Model: "Apple M2", LogicalCores: 8}, Memory: Memory{TotalBytes: 16 * GiB}}
	kernel := r
	kernel.Memory.TotalBytes = 16*GiB - 180*MiB
	more := r
	more.Memory.TotalBytes = 24 * GiB
	if MachineOf(r) != MachineOf(kernel) {
		t.Errorf("%+v and %+v differ", MachineOf(r), MachineOf(kernel))
	}
	if MachineOf(r) == MachineOf(more) {
		t.Errorf("16 and 24 GiB are the same machine: %+v", MachineOf(more))
	}
}

// A damaged or foreign file holds no figure and is replaced, never an
// error.
func TestBandwidthCacheReplacesABadFile(t *testing.T) {
	for name, content := range map[string]string{
		"not JSON":    "\x00\x01garbage",
		"cut short":   `{"machine":{"cpu":"AMD Ryzen 7 5800X 8-Core Processor","cores":16,"ram_gib":32},"bytes_per_sec":4`,
		"another app": `[1, 2, 3]`,
		"no figure":   `{"machine":{"cpu":"AMD Ryzen 7 5800X 8-Core Processor","cores":16,"ram_gib":32},"bytes_per_sec":-1}`,
		"empty":       ``,
	} {
		t.Run(name, func(t *testing.T) {
			var calls int
			c := BandwidthCache{Path: filepath.Join(t.TempDir(), BandwidthFile), Measure: fakeMeasure(42e9, &calls)}
			if err := os.WriteFile(c.Path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			if bw, _, ok := c.Cached(desk); ok {
				t.Fatalf("a %s file gave %v", name, bw)
			}
			if _, err := c.Learn(context.Background(), desk); err != nil {
				t.Fatal(err)
			}
			if bw, _, ok := c.Cached(desk); !ok || bw != 42e9 {
				t.Errorf("after Learn Cached = %v, %v; want 42e9", bw, ok)
			}
		})
	}
}

// A measurement cut short keeps nothing; with no file, Learn only measures.
func TestBandwidthCacheLearnEdges(t *testing.T) {
	var calls int
	c := BandwidthCache{Path: filepath.Join(t.TempDir(), BandwidthFile), Measure: fakeMeasure(42e9, &calls)}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if bw, err := c.Learn(ctx, desk); bw != 0 || err == nil {
		t.Errorf("a cancelled Learn = %v, %v", bw, err)
	}
	if _, err := os.Stat(c.Path); !os.IsNotExist(err) {
		t.Errorf("a cancelled measurement was kept: %v", err)
	}
	c.Measure = fakeMeasure(0, &calls)
	if bw, err := c.Learn(context.Background(), desk); bw != 0 || err == nil {
		t.Errorf("a measurement of nothing: Learn = %v, %v", bw, err)
	}
	mem := BandwidthCache{Measure: fakeMeasure(42e9, &calls)}
	if bw, err := mem.Learn(context.Background(), desk); bw != 42e9 || err != nil {
		t.Errorf("with no file Learn = %v, %v", bw, err)
	}
	if _, _, ok := mem.Cached(desk); ok {
		t.Error("with no file a figure was kept")
	}
}
