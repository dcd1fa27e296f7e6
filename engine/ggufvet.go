package engine

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// Bounds on what a GGUF file may claim. A file beyond them is corrupt or
// hostile, and the parser would size an allocation by the claim.
const (
	// maxBlocks bounds a model's repeating blocks. llama.cpp loads at most
	// 512 (LLAMA_MAX_LAYERS).
	maxBlocks = 1 << 16
	// maxSplitTensors bounds split.tensors.count, the tensors of every shard
	// of a split model together. The largest models have a few thousand.
	maxSplitTensors = 1 << 20
	// maxKeyLen is the longest metadata key the GGUF format allows.
	maxKeyLen = 1<<16 - 1
)

// GGUF metadata value types, as the format numbers them.
const (
	ggufUint8 = iota
	ggufInt8
	ggufUint16
	ggufInt16
	ggufUint32
	ggufInt32
	ggufFloat32
	ggufBool
	ggufString
	ggufArray
	ggufUint64
	ggufInt64
	ggufFloat64
	ggufTypes // the number of types
)

// ggufFixedSize is the size of a value of each type; 0 for strings and arrays.
var ggufFixedSize = [ggufTypes]uint64{1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8}

var (
	errNotGGUF       = errors.New("not a GGUF file (no GGUF magic at the start)")
	errGGUFTruncated = errors.New("GGUF file is truncated")
)

// vetGGUF reads the header and metadata of a GGUF file of size bytes and
// refuses what the parser would trust without looking: counts and lengths
// that the file is too short to hold, a block count or split tensor count
// that sizes a table, an alignment it divides by, and arrays of arrays, which
// llama.cpp refuses too. It never reads the tensor infos or the tensor data.
func vetGGUF(r io.Reader, size int64) error {
	v := &ggufVet{r: bufio.NewReaderSize(r, 64<<10), left: size}
	magic, err := v.next(4)
	if err != nil {
		return errNotGGUF
	}
	switch string(magic) {
	case "GGUF":
		v.bo = binary.LittleEndian
	case "FUGG":
		v.bo = binary.BigEndian
	default:
		return errNotGGUF
	}
	version, err := v.u32()
	if err != nil {
		return err
	}
	if version > 3 {
		return fmt.Errorf("unsupported GGUF version %d (versions 1 to 3 are read)", version)
	}
	v.v1 = version <= 1
	tensors, err := v.count()
	if err != nil {
		return err
	}
	kvs, err := v.count()
	if err != nil {
		return err
	}
	// A tensor info takes at least 20 bytes and a key-value pair 12, even in
	// the 32-bit lengths of version 1.
	if tensors > uint64(v.left)/20 {
		return fmt.Errorf("%w: its header claims %d tensors, more than a %d-byte file can describe", errGGUFTruncated, tensors, size)
	}
	if kvs > uint64(v.left)/12 {
		return fmt.Errorf("%w: its header claims %d metadata keys, more than a %d-byte file can hold", errGGUFTruncated, kvs, size)
	}
	for range kvs {
		if err := v.keyValue(); err != nil {
			return err
		}
	}
	return nil
}

// ggufVet walks a GGUF file's metadata, counting the bytes left in the file.
type ggufVet struct {
	r    *bufio.Reader
	bo   binary.ByteOrder
	v1   bool  // version 1: 32-bit counts and lengths
	left int64 // bytes of the file not yet read
	buf  [8]byte
}

func (v *ggufVet) next(n int) ([]byte, error) {
	if int64(n) > v.left {
		return nil, errGGUFTruncated
	}
	if _, err := io.ReadFull(v.r, v.buf[:n]); err != nil {
		return nil, fmt.Errorf("%w: %w", errGGUFTruncated, err)
	}
	v.left -= int64(n)
	return v.buf[:n], nil
}

func (v *ggufVet) u32() (uint32, error) {
	b, err := v.next(4)
	if err != nil {
		return 0, err
	}
	return v.bo.Uint32(b), nil
}

func (v *ggufVet) u64() (uint64, error) {
	b, err := v.next(8)
	if err != nil {
		return 0, err
	}
	return v.bo.Uint64(b), nil
}

// count reads a count or length: 32 bits in version 1, 64 after.
func (v *ggufVet) count() (uint64, error) {
	if v.v1 {
		n, err := v.u32()
		return uint64(n), err
	}
	return v.u64()
}

// skip passes over n bytes that the file must hold.
func (v *ggufVet) skip(n uint64) error {
	if n > uint64(v.left) {
		return errGGUFTruncated
	}
	if _, err := v.r.Discard(int(n)); err != nil {
		return fmt.Errorf("%w: %w", errGGUFTruncated, err)
	}
	v.left -= int64(n)
	return nil
}

func (v *ggufVet) keyValue() error {
	n, err := v.count()
	if err != nil {
		return err
	}
	if n > maxKeyLen {
		return fmt.Errorf("GGUF metadata key of %d bytes: the format allows %d", n, maxKeyLen)
	}
	if n > uint64(v.left) {
		return errGGUFTruncated
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(v.r, b); err != nil {
		return fmt.Errorf("%w: %w", errGGUFTruncated, err)
	}
	v.left -= int64(n)
	key := string(b)
	typ, err := v.u32()
	if err != nil {
		return err
	}
	if typ >= ggufTypes {
		return fmt.Errorf("GGUF metadata key %q has unknown value type %d", key, typ)
	}
	switch {
	case key == "general.alignment":
		// The parser divides by it and reads it as a uint32 only.
		if typ != ggufUint32 {
			return fmt.Errorf("GGUF metadata key %q must hold a uint32, but it holds type %s", key, ggufTypeName(typ))
		}
		a, err := v.integer(key, typ)
		if err != nil {
			return err
		}
		if a == 0 || a&(a-1) != 0 {
			return fmt.Errorf("GGUF alignment %d is not a power of two", a)
		}
		return nil
	case key == "split.tensors.count":
		n, err := v.integer(key, typ)
		if err != nil {
			return err
		}
		if n > maxSplitTensors {
			return fmt.Errorf("GGUF metadata claims %d tensors in the split model, more than the %d allowed", n, maxSplitTensors)
		}
		return nil
	case strings.HasSuffix(key, ".block_count"):
		n, err := v.integer(key, typ)
		if err != nil {
			return err
		}
		if n > maxBlocks {
			return fmt.Errorf("GGUF metadata claims %d blocks (%s), more than the %d allowed", n, key, maxBlocks)
		}
		return nil
	}
	return v.value(key, typ)
}

// integer reads a value that must be a whole number, not negative.
// Values too large for a uint64 come back as math.MaxUint64.
func (v *ggufVet) integer(key string, typ uint32) (uint64, error) {
	size := ggufFixedSize[typ]
	if size == 0 || typ == ggufBool || typ == ggufFloat32 || typ == ggufFloat64 {
		return 0, fmt.Errorf("GGUF metadata key %q must hold a whole number, but it holds type %s", key, ggufTypeName(typ))
	}
	b, err := v.next(int(size))
	if err != nil {
		return 0, err
	}
	var n uint64
	var neg bool
	switch typ {
	case ggufUint8:
		n = uint64(b[0])
	case ggufInt8:
		n, neg = uint64(int8(b[0])), int8(b[0]) < 0
	case ggufUint16:
		n = uint64(v.bo.Uint16(b))
	case ggufInt16:
		x := int16(v.bo.Uint16(b))
		n, neg = uint64(x), x < 0
	case ggufUint32:
		n = uint64(v.bo.Uint32(b))
	case ggufInt32:
		x := int32(v.bo.Uint32(b))
		n, neg = uint64(x), x < 0
	case ggufUint64:
		n = v.bo.Uint64(b)
	case ggufInt64:
		x := int64(v.bo.Uint64(b))
		n, neg = uint64(x), x < 0
	}
	if neg {
		return math.MaxUint64, nil
	}
	return n, nil
}

// value passes over a value of type typ.
func (v *ggufVet) value(key string, typ uint32) error {
	if size := ggufFixedSize[typ]; size > 0 {
		return v.skip(size)
	}
	if typ == ggufString {
		n, err := v.count()
		if err != nil {
			return err
		}
		return v.skip(n)
	}
	elem, err := v.u32()
	if err != nil {
		return err
	}
	switch {
	case elem >= ggufTypes:
		return fmt.Errorf("GGUF metadata key %q holds an array of unknown type %d", key, elem)
	case elem == ggufArray:
		return fmt.Errorf("GGUF metadata key %q holds an array of arrays, which llama.cpp does not load", key)
	}
	n, err := v.count()
	if err != nil {
		return err
	}
	size := ggufFixedSize[elem]
	if elem == ggufString {
		size = 8 // a string takes at least its length
		if v.v1 {
			size = 4
		}
	}
	if n > uint64(v.left)/size {
		return fmt.Errorf("%w: array %q claims %d items", errGGUFTruncated, key, n)
	}
	if elem != ggufString {
		return v.skip(n * size)
	}
	for range n {
		if err := v.value(key, ggufString); err != nil {
			return err
		}
	}
	return nil
}

func ggufTypeName(typ uint32) string {
	names := [ggufTypes]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
		"bool", "string", "array", "uint64", "int64", "float64"}
	if typ < ggufTypes {
		return names[typ]
	}
	return fmt.Sprintf("type %d", typ)
}
