package app

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/hw"
)

// bareNode is a node with no llama.cpp, no model and no mesh, whose memory
// bandwidth is kept in cacheDir and measured by measure.
func bareNode(t *testing.T, cacheDir string, measure func(context.Context) float64) *Node {
	t.Helper()
	c := DefaultConfig()
	c.DataDir, c.CacheDir, c.API = t.TempDir(), cacheDir, "127.0.0.1:0"
	c.Llama, c.Engine.NoFetch = engine.Locator{}, true
	n, err := NewNode(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.bandwidth.Measure = measure
	return n
}

// startNode runs n until the test ends and returns once its API listens;
// stop ends it and waits for everything it started.
func startNode(t *testing.T, n *Node) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	up, cancelUp := context.WithTimeout(ctx, 30*time.Second)
	defer cancelUp()
	if _, err := n.Up(up); err != nil {
		stop()
		t.Fatalf("the API never listened: %v", err)
	}
	return stop
}

// cpuSpeed is the speed the node plans its CPU with.
func cpuSpeed(n *Node) engine.Speed {
	for _, d := range n.Status().Devices {
		if d.Backend == "CPU" {
			return d.Speed
		}
	}
	return engine.Speed{}
}

// A machine whose bandwidth was measured before starts with that figure
// and measures nothing.
func TestStartUsesTheKeptBandwidth(t *testing.T) {
	cache := t.TempDir()
	r, err := hw.Probe(context.Background())
	if err != nil {
		t.Skipf("no hardware report here: %v", err)
	}
	kept := hw.BandwidthCache{Path: filepath.Join(cache, hw.BandwidthFile), Measure: func(context.Context) float64 { return 42e9 }}
	if _, err := kept.Learn(context.Background(), hw.MachineOf(r)); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	n := bareNode(t, cache, func(context.Context) float64 { calls.Add(1); return 7e9 })
	stop := startNode(t, n)
	if s := cpuSpeed(n); s.BytesPerSecond != 42e9 || s.Source != "measured" {
		t.Errorf("the CPU is planned at %+v, want the kept 42e9", s)
	}
	if r := n.Status().Hardware; r == nil || r.Memory.BandwidthBytesPerSec != 42e9 {
		t.Errorf("the status reports %+v", n.Status().Hardware)
	}
	stop() // everything Run started has ended: a measurement would have counted
	if c := calls.Load(); c != 0 {
		t.Errorf("the bandwidth was measured %d times on a machine that had a figure", c)
	}
}

// With no figure kept, the API answers before the measurement ends; plans
// meanwhile assume the default, and the figure, once measured, is planned
// with and kept.
func TestStartDoesNotWaitForTheBandwidth(t *testing.T) {
	cache := t.TempDir()
	release := make(chan struct{})
	var calls atomic.Int32
	n := bareNode(t, cache, func(ctx context.Context) float64 {
		calls.Add(1)
		select {
		case <-release:
			return 42e9
		case <-ctx.Done():
			return 0
		}
	})
	stop := startNode(t, n) // fails if the start waited for the measurement
	defer stop()
	if s := cpuSpeed(n); s.Source != "default" || s.BytesPerSecond <= 0 {
		t.Errorf("before the measurement the CPU is planned at %+v, want the default", s)
	}
	events, unsubscribe := n.Subscribe()
	defer unsubscribe()
	close(release)
	timeout := time.After(10 * time.Second)
	for cpuSpeed(n).BytesPerSecond != 42e9 {
		select {
		case <-events:
		case <-timeout:
			t.Fatalf("the measured figure never reached the plans: %+v", cpuSpeed(n))
		}
	}
	r := n.Status().Hardware
	if r == nil || r.Memory.BandwidthBytesPerSec != 42e9 {
		t.Fatalf("the status reports %+v", n.Status().Hardware)
	}
	if bw, _, ok := n.bandwidth.Cached(hw.MachineOf(*r)); !ok || bw != 42e9 {
		t.Errorf("the figure was not kept: %v, %v", bw, ok)
	}
	if c := calls.Load(); c != 1 {
		t.Errorf("%d measurements, want 1", c)
	}
}
