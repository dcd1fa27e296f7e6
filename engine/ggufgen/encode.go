package ggufgen

import (
	"bufio"
	"encoding/binary"
	"io"
	"math"
)

// GGUF metadata value types, as numbered by the format.
const (
	typeUint32  uint32 = 4
	typeInt32   uint32 = 5
	typeFloat32 uint32 = 6
	typeBool    uint32 = 7
	typeString  uint32 = 8
	typeArray   uint32 = 9
)

// ggmlTypeF32 is the GGML tensor type id of 32-bit floats.
const ggmlTypeF32 uint32 = 0

// ggufVersion is the GGUF format version this package writes.
const ggufVersion uint32 = 3

// kv is one metadata key-value pair; put encodes its value.
type kv struct {
	key string
	put func(e *encoder)
}

func kvUint32(key string, v uint32) kv {
	return kv{key, func(e *encoder) { e.u32(typeUint32); e.u32(v) }}
}

func kvFloat32(key string, v float32) kv {
	return kv{key, func(e *encoder) { e.u32(typeFloat32); e.f32(v) }}
}

func kvBool(key string, v bool) kv {
	return kv{key, func(e *encoder) { e.u32(typeBool); e.boolean(v) }}
}

func kvString(key, v string) kv {
	return kv{key, func(e *encoder) { e.u32(typeString); e.str(v) }}
}

func kvStrings(key string, vs []string) kv {
	return kv{key, func(e *encoder) {
		e.u32(typeArray)
		e.u32(typeString)
		e.u64(uint64(len(vs)))
		for _, v := range vs {
			e.str(v)
		}
	}}
}

func kvFloat32s(key string, vs []float32) kv {
	return kv{key, func(e *encoder) {
		e.u32(typeArray)
		e.u32(typeFloat32)
		e.u64(uint64(len(vs)))
		for _, v := range vs {
			e.f32(v)
		}
	}}
}

func kvInt32s(key string, vs []int32) kv {
	return kv{key, func(e *encoder) {
		e.u32(typeArray)
		e.u32(typeInt32)
		e.u64(uint64(len(vs)))
		for _, v := range vs {
			e.u32(uint32(v))
		}
	}}
}

// encoder writes little-endian GGUF primitives, counting bytes written and
// keeping the first error so that callers check once at the end.
type encoder struct {
	w   *bufio.Writer
	n   int64
	err error
	buf [8]byte
}

func newEncoder(w io.Writer) *encoder {
	return &encoder{w: bufio.NewWriterSize(w, 64<<10)}
}

func (e *encoder) write(p []byte) {
	if e.err != nil {
		return
	}
	n, err := e.w.Write(p)
	e.n += int64(n)
	e.err = err
}

func (e *encoder) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:4], v)
	e.write(e.buf[:4])
}

func (e *encoder) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:8], v)
	e.write(e.buf[:8])
}

func (e *encoder) f32(v float32) { e.u32(math.Float32bits(v)) }

func (e *encoder) boolean(v bool) {
	b := byte(0)
	if v {
		b = 1
	}
	e.write([]byte{b})
}

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	if e.err == nil {
		n, err := e.w.WriteString(s)
		e.n += int64(n)
		e.err = err
	}
}

// pad writes zero bytes until the count of bytes written is a multiple of align.
func (e *encoder) pad(align int64) {
	var zeros [64]byte
	for rem := padding(e.n, align); rem > 0; {
		k := min(rem, int64(len(zeros)))
		e.write(zeros[:k])
		rem -= k
	}
}

func (e *encoder) flush() error {
	if e.err != nil {
		return e.err
	}
	return e.w.Flush()
}

// padding returns how many bytes take n up to the next multiple of align.
func padding(n, align int64) int64 {
	return (align - n%align) % align
}
