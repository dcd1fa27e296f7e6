package hw

import (
	"context"
	"testing"
)

// The measurement reads real memory: any machine manages more than 100 MB/s
// and less than 10 TB/s.
func TestMeasureMemoryBandwidth(t *testing.T) {
	bw := MeasureMemoryBandwidth(context.Background())
	t.Logf("memory bandwidth: %.1f GB/s", bw/1e9)
	if bw < 1e8 || bw > 1e13 {
		t.Errorf("measured %.3g B/s, not a memory bandwidth", bw)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := MeasureMemoryBandwidth(ctx); got != 0 {
		t.Errorf("a cancelled measurement returned %v", got)
	}
}

func TestSumWords(t *testing.T) {
	for n := range 10 {
		b := make([]uint64, n)
		var want uint64
		for i := range b {
			b[i] = uint64(i*i + 1)
			want += b[i]
		}
		if got := sumWords(b); got != want {
			t.Errorf("sumWords of %d words = %d, want %d", n, got, want)
		}
	}
}
