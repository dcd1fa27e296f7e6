package rpcgate_test

import (
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/rpcgate"
	"github.com/potluck-gpu/potluck/rpcgate/rpcgatetest"
	"github.com/potluck-gpu/potluck/runtimes"
	"github.com/potluck-gpu/potluck/runtimes/runtimestest"
)

// gateTo listens on loopback and carries each connection to worker
// through the gate; refusals come out of the channel.
func gateTo(t *testing.T, worker string, lim rpcgate.Limits) (string, <-chan *rpcgate.Refusal) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	refused := make(chan *rpcgate.Refusal, 16)
	go func() {
		for {
			head, err := l.Accept()
			if err != nil {
				return
			}
			w, err := net.Dial("tcp", worker)
			if err != nil {
				head.Close()
				continue
			}
			go func() {
				if r := rpcgate.Pipe(head, w, lim); r != nil {
					refused <- r
				}
			}()
		}
	}()
	return l.Addr().String(), refused
}

// splitThrough is the greedy text of a split of m over the worker behind
// gate.
func splitThrough(t *testing.T, rt engine.Runtime, m enginetest.Model, gate string) string {
	t.Helper()
	base := enginetest.Server(t, rt, engine.ServerSpec{Model: m.Path, RPC: []string{gate}, Devices: []string{"RPC0"}, GPULayers: -1})
	return enginetest.Complete(t, base, 32)
}

// passesSplit checks that a split of rt through the gate gives one
// process's greedy text, and that nothing a real head sends is refused.
func passesSplit(t *testing.T, rt engine.Runtime) {
	t.Helper()
	m := enginetest.TestModel(t)
	want := enginetest.Complete(t, enginetest.Server(t, rt, engine.ServerSpec{Model: m.Path, Devices: []string{"none"}}), 32)
	worker := enginetest.Worker(t, rt, engine.WorkerSpec{})
	gate, refused := gateTo(t, worker, rpcgate.Limits{MaxAlloc: 1 << 30})
	if got := splitThrough(t, rt, m, gate); got != want {
		t.Errorf("through the gate %q, want %q", got, want)
	}
	select {
	case r := <-refused:
		t.Errorf("a real head was refused: %v", r)
	default:
	}
}

func TestGateLetsASplitThrough(t *testing.T) {
	rt := enginetest.Runtime(t)
	if rt.Worker.Path == "" {
		t.Skip("no RPC worker in this llama.cpp")
	}
	passesSplit(t, rt)
}

// hello opens a connection through the gate as a head would, and returns
// it with the worker's protocol (7 or 8).
func hello(t *testing.T, gate string) (net.Conn, byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", gate, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	major, err := rpcgatetest.Hello(c, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c, major
}

// What a hostile member sends is refused, the stream closed, and the
// worker goes on serving a real head.
func TestGateRefusesAHostileHead(t *testing.T) {
	rt := enginetest.Runtime(t)
	if rt.Worker.Path == "" {
		t.Skip("no RPC worker in this llama.cpp")
	}
	refusesHostileHead(t, rt)
}

// The same before a worker of RPC protocol 7 (llama.cpp 0.5.0, built here).
func TestGateRefusesAHostileHeadProtocol7(t *testing.T) {
	refusesHostileHead(t, protocol7(t))
}

func refusesHostileHead(t *testing.T, rt engine.Runtime) {
	t.Helper()
	worker := enginetest.Worker(t, rt, engine.WorkerSpec{})
	gate, refused := gateTo(t, worker, rpcgate.Limits{MaxAlloc: 1 << 30})

	for _, c := range rpcgatetest.Attacks() {
		t.Run(c.Name, func(t *testing.T) {
			conn, major := hello(t, gate)
			defer conn.Close()
			if _, err := conn.Write(c.Frame(major)); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-refused:
				if r.Reason != c.Reason {
					t.Errorf("refused as %q (%s), want %q", r.Reason, r.Detail, c.Reason)
				}
				t.Logf("%v", r)
			case <-time.After(10 * time.Second):
				t.Fatal("not refused")
			}
			if !rpcgatetest.Closed(conn, 5*time.Second) {
				t.Errorf("the stream stayed open")
			}
		})
	}
	m := enginetest.TestModel(t)
	want := enginetest.Complete(t, enginetest.Server(t, rt, engine.ServerSpec{Model: m.Path, Devices: []string{"none"}}), 32)
	if got := splitThrough(t, rt, m, gate); got != want {
		t.Errorf("after the hostile head: %q, want %q", got, want)
	}
}

// The same through a worker of RPC protocol 7 (llama.cpp 0.5.0, built here).
func TestGateLetsASplitThroughProtocol7(t *testing.T) {
	passesSplit(t, protocol7(t))
}

// protocol7 is llama.cpp 0.5.0 as scripts/llama-build.sh builds it here.
func protocol7(t *testing.T) engine.Runtime {
	t.Helper()
	b := runtimestest.Binaries(t, runtime.GOOS)
	rt, err := (runtimes.Build{Version: b.Version, Backend: runtimes.BackendCPU, Source: runtimes.SourceRelease, Dir: b.Dir}).Runtime()
	if err != nil {
		t.Fatal(err)
	}
	return rt
}
