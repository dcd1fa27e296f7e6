package netmeshtest

import (
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// leakGrace is how long goroutines may take to wind down after cleanup: some
// of EdgeVPN's loops only look at their context once a second.
const leakGrace = 10 * time.Second

// processWide are goroutines that libraries start once per process and keep
// for its lifetime; they are not leaks of any one node.
var processWide = []string{
	"go.opencensus.io/stats/view.(*worker).start",
	"github.com/ipfs/go-log/v2/writer",
	"github.com/ipfs/go-cid",
	"os/signal.signal_recv",
	"runtime.ensureSigM",
	"github.com/libp2p/go-flow-metrics.(*sweeper).run", // the meters of every node's traffic count
}

// CheckLeaks fails the test if goroutines started during it are still running
// shortly after its cleanup. Call it first in a test so its check runs after
// every other cleanup.
func CheckLeaks(t testing.TB) {
	t.Helper()
	before := goroutines()
	t.Cleanup(func() {
		deadline := time.Now().Add(leakGrace)
		for {
			leaked := leakedSince(before)
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutine(s) leaked:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// goroutines maps goroutine IDs to their stacks.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		head, _, _ := strings.Cut(g, "\n")
		// "goroutine 42 [chan receive]:"
		f := strings.Fields(head)
		if len(f) >= 2 && f[0] == "goroutine" {
			out[f[1]] = g
		}
	}
	return out
}

func leakedSince(before map[string]string) []string {
	var leaked []string
	for id, stack := range goroutines() {
		if _, ok := before[id]; ok || isBenign(stack) {
			continue
		}
		leaked = append(leaked, stack)
	}
	slices.Sort(leaked)
	return leaked
}

func isBenign(stack string) bool {
	if strings.Contains(stack, "netmeshtest.goroutines(") {
		return true // the checker itself
	}
	for _, s := range processWide {
		if strings.Contains(stack, s) {
			return true
		}
	}
	return false
}
