package hw

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// bandwidthBuffer is how much memory MeasureMemoryBandwidth reads: far more
// than any CPU cache, so the figure is the memory's.
const bandwidthBuffer = 256 * MiB

// MeasureMemoryBandwidth reads a buffer far larger than the CPU caches
// with one goroutine per core, a few times, and returns the best rate in
// bytes a second: what decoding on the CPU can hope for, since it reads
// every weight once per token. It takes a few hundred milliseconds and a
// quarter of a GiB for that long, which it gives back.
func MeasureMemoryBandwidth(ctx context.Context) float64 {
	buf := make([]uint64, bandwidthBuffer/8)
	for i := range buf {
		buf[i] = uint64(i) // touch every page, so reads hit memory
	}
	workers := max(runtime.GOMAXPROCS(0), 1)
	chunk := (len(buf) + workers - 1) / workers
	var best float64
	var sink uint64
	for range 4 {
		if ctx.Err() != nil {
			break
		}
		var wg sync.WaitGroup
		sums := make([]uint64, workers)
		start := time.Now()
		for w := range workers {
			lo := min(w*chunk, len(buf))
			hi := min(lo+chunk, len(buf))
			wg.Add(1)
			go func() {
				defer wg.Done()
				sums[w] = sumWords(buf[lo:hi])
			}()
		}
		wg.Wait()
		if d := time.Since(start); d > 0 {
			best = max(best, float64(len(buf)*8)/d.Seconds())
		}
		for _, s := range sums {
			sink += s
		}
	}
	runtime.KeepAlive(sink)
	// Give the buffer back to the system now: a node that measured once
	// must not look a quarter of a GiB bigger for the rest of its life.
	buf = nil
	debug.FreeOSMemory()
	return best
}

// sumWords reads every word, four at a time so the loop is not the limit.
func sumWords(b []uint64) uint64 {
	var s0, s1, s2, s3 uint64
	i := 0
	for ; i+4 <= len(b); i += 4 {
		s0 += b[i]
		s1 += b[i+1]
		s2 += b[i+2]
		s3 += b[i+3]
	}
	for ; i < len(b); i++ {
		s0 += b[i]
	}
	return s0 + s1 + s2 + s3
}
