package rpcgate

import (
	"encoding/binary"
	"math/bits"
)

// ggml's RPC commands, one byte on the wire, as llama.cpp's RPC protocol
// 7.0.0 (llama.cpp 0.5.0) and 8.0.0 (0.7.0) number them. 8.0.0 adds 18 to
// 22, which a layer split never sends.
const (
	cmdAllocBuffer     = 0
	cmdGetAlignment    = 1
	cmdGetMaxSize      = 2
	cmdBufferGetBase   = 3
	cmdFreeBuffer      = 4
	cmdBufferClear     = 5
	cmdSetTensor       = 6
	cmdSetTensorHash   = 7
	cmdGetTensor       = 8
	cmdCopyTensor      = 9
	cmdGraphCompute    = 10
	cmdGetDeviceMemory = 11
	cmdInitTensor      = 12
	cmdGetAllocSize    = 13
	cmdHello           = 14
	cmdDeviceCount     = 15
	cmdGraphRecompute  = 16
	cmdMemsetTensor    = 17
)

var cmdNames = [...]string{"ALLOC_BUFFER", "GET_ALIGNMENT", "GET_MAX_SIZE", "BUFFER_GET_BASE", "FREE_BUFFER",
	"BUFFER_CLEAR", "SET_TENSOR", "SET_TENSOR_HASH", "GET_TENSOR", "COPY_TENSOR", "GRAPH_COMPUTE",
	"GET_DEVICE_MEMORY", "INIT_TENSOR", "GET_ALLOC_SIZE", "HELLO", "DEVICE_COUNT", "GRAPH_RECOMPUTE", "MEMSET_TENSOR"}

func cmdName(c byte) string {
	if int(c) < len(cmdNames) {
		return cmdNames[c]
	}
	return "command " + itoa(uint64(c))
}

const (
	headerSize     = 9   // cmd u8, size u64
	tensorSize     = 296 // struct rpc_tensor, packed
	helloCaps      = 24  // the connection capabilities after HELLO
	setTensorFixed = tensorSize + 1 + 8
	maxSrc         = 10
)

// requestSize is the exact payload of each fixed-size command; -1 for
// those of variable size. GRAPH_RECOMPUTE depends on the protocol.
func requestSize(cmd byte, major uint8) int {
	switch cmd {
	case cmdAllocBuffer:
		return 12
	case cmdGetAlignment, cmdGetMaxSize, cmdGetDeviceMemory:
		return 4
	case cmdBufferGetBase, cmdFreeBuffer:
		return 8
	case cmdBufferClear:
		return 9
	case cmdSetTensorHash, cmdGetTensor:
		return tensorSize + 16
	case cmdCopyTensor:
		return 2 * tensorSize
	case cmdInitTensor:
		return tensorSize
	case cmdGetAllocSize:
		return 4 + tensorSize*(1+maxSrc)
	case cmdDeviceCount:
		return 0
	case cmdGraphRecompute:
		if major >= 8 {
			return 12
		}
		return 4
	case cmdMemsetTensor:
		return tensorSize + 17
	}
	return -1
}

// responseSize is the payload of each command's answer, 0 for commands
// that have none; GET_TENSOR's is the size it asks for.
func responseSize(cmd byte) uint64 {
	switch cmd {
	case cmdAllocBuffer, cmdGetDeviceMemory:
		return 16
	case cmdGetAlignment, cmdGetMaxSize, cmdBufferGetBase, cmdGetAllocSize:
		return 8
	case cmdSetTensorHash, cmdCopyTensor:
		return 1
	case cmdHello:
		return 4 + helloCaps
	case cmdDeviceCount:
		return 4
	}
	return 0
}

// ggml's operations, by number (the same in both protocols).
const (
	opGetRows       = 40
	opSetRows       = 42
	opGatedDeltaNet = 86
	opUnary         = 91
	opMapCustom1    = 92
	opMapCustom3    = 94
	opCustom        = 95
	opGLU           = 100
	opCount         = 101

	unaryCount = 22
	gluCount   = 7
)

// ggml's tensor types: block size (elements) and its bytes; 0 for the
// numbers ggml no longer uses.
var typeBlock = [...][2]uint64{
	{1, 4}, {1, 2}, {32, 18}, {32, 20}, {0, 0}, {0, 0}, {32, 22}, {32, 24}, {32, 34}, {32, 36},
	{256, 84}, {256, 110}, {256, 144}, {256, 176}, {256, 210}, {256, 292}, {256, 66}, {256, 74}, {256, 98}, {256, 50},
	{32, 18}, {256, 110}, {256, 82}, {256, 136}, {1, 1}, {1, 2}, {1, 4}, {1, 8}, {1, 8}, {256, 56},
	{1, 2}, {0, 0}, {0, 0}, {0, 0}, {256, 54}, {256, 66}, {0, 0}, {0, 0}, {0, 0}, {32, 17},
	{64, 36}, {128, 18}, {64, 18},
}

const (
	typeF32 = 0
	typeF16 = 1
	typeI32 = 26
	typeI64 = 27
)

// tensor is one struct rpc_tensor as it is on the wire.
type tensor []byte

func (t tensor) u32(off int) uint32 { return binary.LittleEndian.Uint32(t[off:]) }
func (t tensor) u64(off int) uint64 { return binary.LittleEndian.Uint64(t[off:]) }

func (t tensor) id() uint64      { return t.u64(0) }
func (t tensor) typ() uint32     { return t.u32(8) }
func (t tensor) buffer() uint64  { return t.u64(12) }
func (t tensor) ne(i int) uint64 { return uint64(t.u32(20 + 4*i)) }
func (t tensor) nb(i int) uint64 { return uint64(t.u32(36 + 4*i)) }
func (t tensor) op() uint32      { return t.u32(52) }
func (t tensor) param(i int) int32 {
	return int32(t.u32(56 + 4*i))
}
func (t tensor) src(i int) uint64 { return t.u64(124 + 8*i) }
func (t tensor) viewSrc() uint64  { return t.u64(204) }
func (t tensor) data() uint64     { return t.u64(220) }
func (t tensor) sameShape(u tensor) bool {
	return t.ne(0) == u.ne(0) && t.ne(1) == u.ne(1) && t.ne(2) == u.ne(2) && t.ne(3) == u.ne(3)
}

// nbytes is ggml_nbytes: the bytes the tensor spans in its buffer, and
// false where the sum does not fit 64 bits.
func (t tensor) nbytes() (uint64, bool) {
	for i := range 4 {
		if t.ne(i) == 0 {
			return 0, true
		}
	}
	blck, size := typeBlock[t.typ()][0], typeBlock[t.typ()][1]
	var n uint64
	if blck == 1 {
		n = size
	} else {
		hi, lo := bits.Mul64(t.ne(0), t.nb(0))
		if hi != 0 {
			return 0, false
		}
		n = lo / blck
	}
	for i := range 4 {
		if i == 0 && blck != 1 {
			continue
		}
		hi, lo := bits.Mul64(t.ne(i)-1, t.nb(i))
		var carry uint64
		n, carry = bits.Add64(n, lo, 0)
		if hi != 0 || carry != 0 {
			return 0, false
		}
	}
	return n, true
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}
