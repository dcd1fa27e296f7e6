package hw

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestMonitor feeds a sequence of MemAvailable values through the P100
// snapshot and checks that only meaningful changes are published, that
// refreshes read nothing but meminfo, and that NVML is opened once.
func TestMonitor(t *testing.T) {
	avail := []uint64{20 * GiB, 20*GiB + 10*MiB, 20*GiB + 20*MiB, 18 * GiB, 18 * GiB, 24 * GiB}
	nv := &fakeReader{}
	p := p100Prober(t, nv)
	meminfo := filepath.Join(p.Root, "proc/meminfo")

	var mu sync.Mutex
	reads := 0
	var other []string
	p.ReadFile = func(name string) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if name != meminfo {
			other = append(other, name)
			return os.ReadFile(name)
		}
		a := avail[min(reads, len(avail)-1)]
		reads++
		return []byte(fmt.Sprintf("MemTotal: %d kB\nMemAvailable: %d kB\n", 30601816, a/KiB)), nil
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan Report, 10)
	m := &Monitor{Prober: p, Interval: time.Millisecond, OnChange: func(r Report) { got <- r }}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()

	var published []uint64
	for len(published) < 3 {
		select {
		case r := <-got:
			published = append(published, r.Memory.AvailableBytes)
		case <-time.After(10 * time.Second):
			t.Fatalf("published only %v", published)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	want := []uint64{20 * GiB, 18 * GiB, 24 * GiB}
	for i := range want {
		if published[i] != want[i] {
			t.Fatalf("published %v, want %v", published, want)
		}
	}
	if latest, ok := m.Latest(); !ok || latest.Memory.AvailableBytes != 24*GiB || len(latest.GPUs) != 1 {
		t.Fatalf("Latest = %+v, %v", latest, ok)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(other) != 0 {
		t.Errorf("refreshes read %v besides meminfo", other)
	}
	nv.mu.Lock()
	defer nv.mu.Unlock()
	if nv.closed != 1 || nv.reads < len(avail) {
		t.Errorf("NVIDIA reader: %d reads, closed %d times; want one per refresh, closed once", nv.reads, nv.closed)
	}
}

func TestMonitorFirstProbeFails(t *testing.T) {
	p := p100Prober(t, &fakeReader{})
	p.ReadFile = func(string) ([]byte, error) { return nil, os.ErrPermission }
	m := &Monitor{Prober: p, OnChange: func(Report) { t.Error("OnChange called") }}
	if err := m.Run(context.Background()); err == nil {
		t.Fatal("Run = nil, want the probe's error")
	}
	if _, ok := m.Latest(); ok {
		t.Fatal("Latest has a report")
	}
}
