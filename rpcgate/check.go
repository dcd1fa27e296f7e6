package rpcgate

import (
	"encoding/binary"
	"fmt"
)

// Reasons a stream is refused, for counting.
const (
	ReasonCommand  = "command"   // a command a head never sends
	ReasonFraming  = "framing"   // sizes or order that do not follow the protocol
	ReasonCustomOp = "custom-op" // a custom operation: a function pointer chosen by the sender
	ReasonOp       = "op"        // an operation ggml does not have, or one refused
	ReasonShape    = "shape"     // shapes that ggml itself would refuse to build
	ReasonTensor   = "tensor"    // a tensor outside its buffer, or of no type
	ReasonAlloc    = "alloc"     // more memory than the worker lends
	ReasonGraph    = "graph"     // a graph too large, too deep, or not well formed
	ReasonVersion  = "version"   // a protocol this gate does not know
)

// Reasons are all the reasons, for counters.
var Reasons = []string{ReasonCommand, ReasonFraming, ReasonCustomOp, ReasonOp, ReasonShape, ReasonTensor, ReasonAlloc, ReasonGraph, ReasonVersion}

// Refusal is why the gate closed a stream.
type Refusal struct {
	Reason string // one of the Reason constants
	Detail string
}

func (r *Refusal) Error() string { return "rpc gate: " + r.Reason + ": " + r.Detail }

func refuse(reason, format string, args ...any) *Refusal {
	return &Refusal{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// checkTensor checks one tensor as the worker would take it in: a type
// ggml has, whole blocks, an operation that is not custom, and data
// inside a buffer of this connection whose base is known.
func (g *gate) checkTensor(t tensor) *Refusal {
	typ := t.typ()
	if int(typ) >= len(typeBlock) || typeBlock[typ][0] == 0 {
		return refuse(ReasonTensor, "tensor of type %d", typ)
	}
	if blck := typeBlock[typ][0]; t.ne(0)%blck != 0 {
		return refuse(ReasonTensor, "tensor of %d elements in blocks of %d", t.ne(0), blck)
	}
	switch op := t.op(); {
	case op >= opMapCustom1 && op <= opCustom:
		return refuse(ReasonCustomOp, "a custom operation (%d)", op)
	case op >= opCount:
		return refuse(ReasonOp, "operation %d", op)
	case op == opUnary && (t.param(0) < 0 || t.param(0) >= unaryCount),
		op == opGLU && (t.param(0) < 0 || t.param(0) >= gluCount):
		return refuse(ReasonOp, "operation %d of kind %d", op, t.param(0))
	}
	buf, data := t.buffer(), t.data()
	if buf == 0 {
		if data != 0 {
			return refuse(ReasonTensor, "data at %#x in no buffer", data)
		}
		return nil
	}
	b := g.buffers[buf]
	if b == nil || !b.haveBase {
		return refuse(ReasonTensor, "a buffer this head was not given (%#x)", buf)
	}
	n, ok := t.nbytes()
	if !ok || data < b.base || data-b.base > b.size || n > b.size-(data-b.base) {
		return refuse(ReasonTensor, "%d bytes at %#x outside its buffer of %d at %#x", n, data, b.size, b.base)
	}
	return nil
}

// checkRange checks that length bytes at offset into tensor t's data lie
// inside its buffer, as SET_TENSOR, GET_TENSOR and the like need.
func (g *gate) checkRange(t tensor, offset, length uint64) *Refusal {
	b := g.buffers[t.buffer()]
	if b == nil || !b.haveBase {
		return refuse(ReasonTensor, "data for a buffer this head was not given (%#x)", t.buffer())
	}
	start := t.data() + offset
	if start < t.data() || start < b.base || start-b.base > b.size || length > b.size-(start-b.base) {
		return refuse(ReasonTensor, "%d bytes at %#x outside the buffer of %d at %#x", length, start, b.size, b.base)
	}
	return nil
}

// checkFixed checks the payload of a command of fixed size and returns
// the size of the answer it expects.
func (g *gate) checkFixed(cmd byte, p []byte) (answer uint64, r *Refusal) {
	answer = responseSize(cmd)
	le32 := func(off int) uint32 { return binary.LittleEndian.Uint32(p[off:]) }
	le64 := func(off int) uint64 { return binary.LittleEndian.Uint64(p[off:]) }
	device := func() *Refusal {
		if g.devices > 0 && le32(0) >= g.devices {
			return refuse(ReasonFraming, "device %d of %d", le32(0), g.devices)
		}
		return nil
	}
	known := func(ptr uint64) *Refusal {
		if g.buffers[ptr] == nil {
			return refuse(ReasonFraming, "%s of a buffer this head was not given (%#x)", cmdName(cmd), ptr)
		}
		return nil
	}
	switch cmd {
	case cmdAllocBuffer:
		if r := device(); r != nil {
			return 0, r
		}
		if size := le64(4); g.lim.MaxAlloc > 0 && (size > g.lim.MaxAlloc || g.total > g.lim.MaxAlloc-size) {
			return 0, refuse(ReasonAlloc, "%d bytes asked, %d of %d lent already", size, g.total, g.lim.MaxAlloc)
		}
	case cmdGetAlignment, cmdGetMaxSize, cmdGetDeviceMemory:
		return answer, device()
	case cmdBufferGetBase, cmdFreeBuffer, cmdBufferClear:
		return answer, known(le64(0))
	case cmdSetTensorHash, cmdGetTensor, cmdMemsetTensor:
		t := tensor(p[:tensorSize])
		if r := g.checkTensor(t); r != nil {
			return 0, r
		}
		length := le64(tensorSize + 8)
		if cmd == cmdSetTensorHash {
			length = 0 // the cached data's size is the worker's to know: only where it starts
		}
		if r := g.checkRange(t, le64(tensorSize), length); r != nil {
			return 0, r
		}
		if cmd == cmdGetTensor {
			answer = length
		}
	case cmdCopyTensor:
		for _, t := range []tensor{tensor(p[:tensorSize]), tensor(p[tensorSize:])} {
			if r := g.checkTensor(t); r != nil {
				return 0, r
			}
		}
	case cmdInitTensor:
		return answer, g.checkTensor(tensor(p))
	case cmdGetAllocSize:
		if r := device(); r != nil {
			return 0, r
		}
		for i := range 1 + maxSrc {
			t := tensor(p[4+i*tensorSize : 4+(i+1)*tensorSize])
			if t.id() == 0 && i > 0 {
				continue
			}
			if r := g.checkTensor(t); r != nil {
				return 0, r
			}
		}
	case cmdGraphRecompute:
		dev := le32(0)
		if g.major >= 8 {
			if !g.graphs[dev][le64(4)] {
				return 0, refuse(ReasonGraph, "a recompute of graph %d, never checked", le64(4))
			}
		} else if !g.lastOK[dev] {
			return 0, refuse(ReasonGraph, "a recompute with no checked graph")
		}
	}
	return answer, nil
}
