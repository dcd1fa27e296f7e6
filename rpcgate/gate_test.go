package rpcgate_test

import (
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/rpcgate"
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
	caps := make([]byte, 24)
	for i := range caps {
		caps[i] = 0xAA // the gate sends these as zeros
	}
	if _, err := c.Write(frame(14, caps)); err != nil {
		t.Fatal(err)
	}
	ans := make([]byte, 36)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, ans); err != nil {
		t.Fatalf("HELLO: %v", err)
	}
	if ans[8] != 7 && ans[8] != 8 {
		t.Fatalf("the worker speaks RPC %d", ans[8])
	}
	for _, b := range ans[12:] {
		if b != 0 {
			t.Fatalf("the worker's capabilities reached the head: %x", ans[12:])
		}
	}
	return c, ans[8]
}

func frame(cmd byte, p []byte) []byte {
	b := make([]byte, 9, 9+len(p))
	b[0] = cmd
	binary.LittleEndian.PutUint64(b[1:], uint64(len(p)))
	return append(b, p...)
}

// rpcTensor builds a struct rpc_tensor in no buffer.
func rpcTensor(id uint64, typ, op uint32, ne [4]uint32, src ...uint64) []byte {
	b := make([]byte, 296)
	binary.LittleEndian.PutUint64(b[0:], id)
	binary.LittleEndian.PutUint32(b[8:], typ)
	for i, n := range ne {
		binary.LittleEndian.PutUint32(b[20+4*i:], n)
		binary.LittleEndian.PutUint32(b[36+4*i:], 4*n) // strides; the gate checks no stride in no buffer
	}
	binary.LittleEndian.PutUint32(b[52:], op)
	for i, s := range src {
		binary.LittleEndian.PutUint64(b[124+8*i:], s)
	}
	return b
}

// graph builds a GRAPH_COMPUTE of one node and its tensors, in the
// layout of protocol major.
func graph(major byte, node uint64, tensors ...[]byte) []byte {
	p := make([]byte, 0, 20+8+296*len(tensors))
	p = binary.LittleEndian.AppendUint32(p, 0) // device
	if major >= 8 {
		p = binary.LittleEndian.AppendUint64(p, 42) // uid
	}
	p = binary.LittleEndian.AppendUint32(p, 1)    // nodes
	p = binary.LittleEndian.AppendUint64(p, node) // the node
	p = binary.LittleEndian.AppendUint32(p, uint32(len(tensors)))
	for _, t := range tensors {
		p = append(p, t...)
	}
	return p
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

	custom := rpcTensor(1, 0, 95, [4]uint32{4, 1, 1, 1})
	binary.LittleEndian.PutUint64(custom[56:], 0x4141414141414141) // the function pointer
	a := rpcTensor(2, 0, 0, [4]uint32{8, 16, 1, 1})
	ids := rpcTensor(3, 26, 0, [4]uint32{4, 5, 1, 1}) // ne1 5 where a's ne2 is 1
	rows := rpcTensor(4, 0, 40, [4]uint32{8, 4, 5, 1}, 2, 3)
	alloc := make([]byte, 12)
	binary.LittleEndian.PutUint64(alloc[4:], 1<<40)

	for _, c := range []struct {
		name, reason string
		frame        func(major byte) []byte
	}{
		{"a custom operation with a chosen function pointer", rpcgate.ReasonCustomOp, func(v byte) []byte { return frame(10, graph(v, 1, custom)) }},
		{"GET_ROWS with mismatched shapes", rpcgate.ReasonShape, func(v byte) []byte { return frame(10, graph(v, 4, a, ids, rows)) }},
		{"a 1 TB buffer", rpcgate.ReasonAlloc, func(byte) []byte { return frame(0, alloc) }},
		{"COMM_INIT, which a head never sends", rpcgate.ReasonCommand, func(byte) []byte { return frame(20, make([]byte, 80)) }},
		{"a second HELLO", rpcgate.ReasonFraming, func(byte) []byte { return frame(14, make([]byte, 24)) }},
		{"a graph with a node of id 0", rpcgate.ReasonGraph, func(v byte) []byte { return frame(10, graph(v, 0, a)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, major := hello(t, gate)
			defer conn.Close()
			if _, err := conn.Write(c.frame(major)); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-refused:
				if r.Reason != c.reason {
					t.Errorf("refused as %q (%s), want %q", r.Reason, r.Detail, c.reason)
				}
				t.Logf("%v", r)
			case <-time.After(10 * time.Second):
				t.Fatal("not refused")
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := conn.Read(make([]byte, 1)); err == nil {
				t.Errorf("the stream stayed open (%d bytes more)", n)
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
