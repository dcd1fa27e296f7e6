package hw

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"
)

// TestProbeThisMachine probes the machine running the tests: it must work
// with or without GPUs, drivers or a PCI database.
func TestProbeThisMachine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	r, err := Probe(ctx)
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	took := time.Since(start)
	if r.CPU.LogicalCores < 1 || r.Memory.TotalBytes == 0 || r.Memory.AvailableBytes > r.Memory.TotalBytes {
		t.Fatalf("implausible report: %+v", r)
	}
	if r.GPUs == nil {
		t.Fatal("GPUs is nil, want an empty list at least")
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, r, DefaultOfferPolicy().Offer(r)); err != nil {
		t.Fatal(err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Probe took %v\n%s\n%s", took, buf.String(), js)
}
