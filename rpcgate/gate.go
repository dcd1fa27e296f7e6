// Package rpcgate stands between a head and the RPC worker it reaches
// through the mesh, and lets through only what inference needs. llama.cpp's
// RPC server takes graphs, shapes and buffer addresses on trust, and
// crafted ones have read and written out of bounds in it, or made it call
// a function pointer of the sender's choosing. The gate parses the
// protocol of the llama.cpp Potluck pins (RPC 7 and 8) and closes the
// stream on:
//   - a command a head never sends (the 8.0.0 commands of tensor split,
//     among them one that opens connections of its own), or a second HELLO;
//   - a custom operation, or an operation ggml does not have;
//   - GET_ROWS, SET_ROWS and GATED_DELTA_NET of shapes ggml would refuse;
//   - a tensor outside its buffer, of no type, or of partial blocks;
//   - buffers beyond what the worker lends;
//   - a graph with a cycle, a missing source, a tensor named twice, or
//     too many nodes, tensors or levels.
//
// It also zeroes the transport capabilities both sides announce, so that
// the session never leaves the stream it checks.
//
// What it cannot check is what tensors hold: SSM_SCAN (Mamba's layers)
// indexes its state with values the head wrote, and goes through; the
// sandbox the worker runs in is what bounds that.
package rpcgate

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
)

// Limits bound what a head may ask of the worker.
type Limits struct {
	// MaxAlloc bounds the bytes of all buffers alive at once: what the
	// worker lends. 0: no bound.
	MaxAlloc uint64
	// MaxGraph bounds one GRAPH_COMPUTE's bytes; 0: 64 MiB.
	MaxGraph uint64
	// MaxNodes, MaxTensors and MaxDepth bound a graph; 0: 65536, 262144
	// and 16384.
	MaxNodes, MaxTensors, MaxDepth int
}

func (l Limits) maxGraph() uint64 { return cmp(l.MaxGraph, 64<<20) }
func (l Limits) maxNodes() int    { return int(cmp(uint64(l.MaxNodes), 1<<16)) }
func (l Limits) maxTensors() int  { return int(cmp(uint64(l.MaxTensors), 1<<18)) }
func (l Limits) maxDepth() int    { return int(cmp(uint64(l.MaxDepth), 1<<14)) }

func cmp(v, def uint64) uint64 {
	if v == 0 {
		return def
	}
	return v
}

type buffer struct {
	size, base uint64
	haveBase   bool
}

type answer struct {
	cmd  byte
	size uint64
	ptr  uint64 // BUFFER_GET_BASE's buffer
}

// gate is one connection's view of the worker: its buffers and the
// graphs the gate has checked, as the worker keeps them.
type gate struct {
	lim Limits

	mu      sync.Mutex
	major   uint8 // the worker's protocol, from its HELLO; 0 before
	answers []answer
	buffers map[uint64]*buffer
	total   uint64
	devices uint32                     // from DEVICE_COUNT; 0 unknown
	graphs  map[uint32]map[uint64]bool // protocol 8: the checked graphs the worker keeps, by device and uid
	lastOK  map[uint32]bool            // protocol 7: whether the device's last graph was checked
}

// Pipe carries one connection between a head and a worker through the
// gate until either side ends it, or the gate refuses what the head sent,
// and then closes both. It returns the refusal, or nil.
func Pipe(head, worker net.Conn, lim Limits) *Refusal {
	g := &gate{lim: lim, buffers: map[uint64]*buffer{}, graphs: map[uint32]map[uint64]bool{}, lastOK: map[uint32]bool{}}
	errs := make(chan error, 2)
	go func() { errs <- g.requests(head, worker) }()
	go func() { errs <- g.answersTo(worker, head) }()
	err := <-errs
	head.Close()
	worker.Close()
	<-errs
	var r *Refusal
	if errors.As(err, &r) {
		return r
	}
	return nil
}

// requests carries the head's commands to the worker, checked.
func (g *gate) requests(head io.Reader, to io.Writer) error {
	r := bufio.NewReaderSize(head, 64<<10)
	worker := newBatch(to, r)
	hdr := make([]byte, headerSize)
	first := true
	for {
		if err := worker.flushIfIdle(); err != nil {
			return err
		}
		if _, err := io.ReadFull(r, hdr); err != nil {
			return err
		}
		cmd, size := hdr[0], binary.LittleEndian.Uint64(hdr[1:])
		switch {
		case first && cmd != cmdHello:
			return refuse(ReasonFraming, "%s before HELLO", cmdName(cmd))
		case !first && cmd == cmdHello:
			return refuse(ReasonFraming, "a second HELLO")
		}
		first = false
		switch cmd {
		case cmdHello:
			if size != helloCaps {
				return refuse(ReasonFraming, "HELLO of %d bytes", size)
			}
			p := make([]byte, helloCaps) // the capabilities, sent as none
			if _, err := io.ReadFull(r, p); err != nil {
				return err
			}
			g.expect(answer{cmd: cmd, size: responseSize(cmd)})
			if err := write(worker, hdr, make([]byte, helloCaps)); err != nil {
				return err
			}
		case cmdSetTensor:
			if err := g.setTensor(r, worker, hdr, size); err != nil {
				return err
			}
		case cmdGraphCompute:
			if size > g.lim.maxGraph() {
				return refuse(ReasonGraph, "a graph of %d bytes", size)
			}
			p := make([]byte, size)
			if _, err := io.ReadFull(r, p); err != nil {
				return err
			}
			g.mu.Lock()
			device, uid, ref := g.checkGraph(p)
			if ref == nil {
				g.recordGraph(device, uid)
			}
			g.mu.Unlock()
			if ref != nil {
				return ref
			}
			if err := write(worker, hdr, p); err != nil {
				return err
			}
		default:
			g.mu.Lock()
			want := requestSize(cmd, g.major)
			g.mu.Unlock()
			if cmd > cmdMemsetTensor || want < 0 {
				return refuse(ReasonCommand, "%s, which a head never sends", cmdName(cmd))
			}
			if size != uint64(want) {
				return refuse(ReasonFraming, "%s of %d bytes, not %d", cmdName(cmd), size, want)
			}
			p := make([]byte, size)
			if _, err := io.ReadFull(r, p); err != nil {
				return err
			}
			if err := g.command(cmd, p); err != nil {
				return err
			}
			if err := write(worker, hdr, p); err != nil {
				return err
			}
		}
	}
}

// command checks a fixed-size command and notes the answer it awaits.
func (g *gate) command(cmd byte, p []byte) *Refusal {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.major == 0 {
		return refuse(ReasonFraming, "%s before the worker's HELLO", cmdName(cmd))
	}
	size, r := g.checkFixed(cmd, p)
	if r != nil {
		return r
	}
	switch cmd {
	case cmdFreeBuffer:
		ptr := binary.LittleEndian.Uint64(p)
		g.total -= g.buffers[ptr].size
		delete(g.buffers, ptr)
		// The worker forgets its graphs then, and so does the gate.
		clear(g.graphs)
		clear(g.lastOK)
	}
	if responseSize(cmd) > 0 || cmd == cmdGetTensor {
		a := answer{cmd: cmd, size: size}
		if cmd == cmdBufferGetBase {
			a.ptr = binary.LittleEndian.Uint64(p)
		}
		g.answers = append(g.answers, a)
	}
	return nil
}

// setTensor checks SET_TENSOR's header and streams its data through.
func (g *gate) setTensor(r io.Reader, worker io.Writer, hdr []byte, size uint64) error {
	if size < setTensorFixed {
		return refuse(ReasonFraming, "SET_TENSOR of %d bytes", size)
	}
	p := make([]byte, setTensorFixed)
	if _, err := io.ReadFull(r, p); err != nil {
		return err
	}
	t := tensor(p[:tensorSize])
	g.mu.Lock()
	ref := g.checkTensor(t)
	if ref == nil {
		ref = g.checkRange(t, binary.LittleEndian.Uint64(p[tensorSize+1:]), size-setTensorFixed)
	}
	g.mu.Unlock()
	if ref != nil {
		return ref
	}
	if err := write(worker, hdr, p); err != nil {
		return err
	}
	_, err := io.CopyN(worker, r, int64(size-setTensorFixed))
	return err
}

// recordGraph remembers a checked graph as the worker keeps it, for
// GRAPH_RECOMPUTE.
func (g *gate) recordGraph(device uint32, uid uint64) {
	if g.major < 8 {
		g.lastOK[device] = true
		return
	}
	if uid == 0 {
		return
	}
	m := g.graphs[device]
	if m == nil || len(m) >= 1024 { // the worker starts over at 1024 too
		m = map[uint64]bool{}
		g.graphs[device] = m
	}
	m[uid] = true
}

func (g *gate) expect(a answer) {
	g.mu.Lock()
	g.answers = append(g.answers, a)
	g.mu.Unlock()
}

// answersTo carries the worker's answers to the head, noting what they
// tell: the protocol, buffers and their bases, the devices.
func (g *gate) answersTo(worker io.Reader, to io.Writer) error {
	r := bufio.NewReaderSize(worker, 64<<10)
	head := newBatch(to, r)
	hdr := make([]byte, 8)
	for {
		if err := head.flushIfIdle(); err != nil {
			return err
		}
		if _, err := io.ReadFull(r, hdr); err != nil {
			return err
		}
		size := binary.LittleEndian.Uint64(hdr)
		g.mu.Lock()
		if len(g.answers) == 0 {
			g.mu.Unlock()
			return refuse(ReasonFraming, "an answer from the worker to nothing asked")
		}
		a := g.answers[0]
		g.answers = g.answers[1:]
		g.mu.Unlock()
		if size != a.size {
			return refuse(ReasonFraming, "the worker's answer to %s of %d bytes, not %d", cmdName(a.cmd), size, a.size)
		}
		if a.cmd == cmdGetTensor {
			if _, err := head.Write(hdr); err != nil {
				return err
			}
			if _, err := io.CopyN(head, r, int64(size)); err != nil {
				return err
			}
			continue
		}
		p := make([]byte, size)
		if _, err := io.ReadFull(r, p); err != nil {
			return err
		}
		if err := g.noteAnswer(a, p); err != nil {
			return err
		}
		if err := write(head, hdr, p); err != nil {
			return err
		}
	}
}

func (g *gate) noteAnswer(a answer, p []byte) *Refusal {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch a.cmd {
	case cmdHello:
		if p[0] != 7 && p[0] != 8 {
			return refuse(ReasonVersion, "a worker of RPC protocol %d.%d.%d", p[0], p[1], p[2])
		}
		g.major = p[0]
		clear(p[4:]) // its capabilities, as none
	case cmdAllocBuffer:
		if ptr := binary.LittleEndian.Uint64(p); ptr != 0 {
			size := binary.LittleEndian.Uint64(p[8:])
			g.buffers[ptr] = &buffer{size: size}
			g.total += size
		}
	case cmdBufferGetBase:
		if b := g.buffers[a.ptr]; b != nil {
			b.base, b.haveBase = binary.LittleEndian.Uint64(p), true
		}
	case cmdDeviceCount:
		g.devices = binary.LittleEndian.Uint32(p)
	}
	return nil
}

// write sends a frame's header and payload in one write.
func write(w io.Writer, hdr, p []byte) error {
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}

// batch gathers what the gate forwards in one direction, and sends it when
// nothing more has arrived already: the messages a head sends in a row (the
// inputs, then the graph) leave together, as a plain relay would send them,
// rather than one system call and one packet each.
type batch struct {
	*bufio.Writer
	in *bufio.Reader
}

func newBatch(w io.Writer, in *bufio.Reader) batch {
	return batch{bufio.NewWriterSize(w, 64<<10), in}
}

// flushIfIdle sends what is gathered unless more input is at hand.
func (b batch) flushIfIdle() error {
	if b.in.Buffered() > 0 && b.Buffered() < b.Size()/2 {
		return nil
	}
	return b.Flush()
}
