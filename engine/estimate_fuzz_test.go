package engine_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
)

// FuzzEstimateModel feeds EstimateModel arbitrary files. It must refuse a bad
// one with an error, quickly and in memory proportional to the file, and
// whatever it accepts must add up.
func FuzzEstimateModel(f *testing.F) {
	seeds := estimateSeeds(f)
	for _, seed := range seeds {
		f.Add(seed, 0)
	}
	good := seeds[0]
	f.Add(good, 512)
	f.Add(good, math.MaxInt)
	f.Add(good, -1)

	path := filepath.Join(f.TempDir(), "model.gguf") // one per worker process
	f.Fuzz(func(t *testing.T, data []byte, ctx int) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		start, alloc0 := time.Now(), allocatedBytes()
		est, err := engine.EstimateModel(path, ctx)
		took, alloc := time.Since(start), allocatedBytes()-alloc0
		if took > 5*time.Second {
			t.Errorf("EstimateModel took %v on a %d-byte file", took, len(data))
		}
		// The parser keeps arrays it reads as []any: some 16 bytes and a
		// boxed value per byte of file at worst.
		if limit := uint64(64*len(data) + 8<<20); alloc > limit {
			t.Errorf("EstimateModel allocated %d bytes for a %d-byte file (limit %d)", alloc, len(data), limit)
		}
		if err != nil {
			if err.Error() == "" {
				t.Error("empty error")
			}
			return
		}
		checkEstimate(t, est, ctx, uint64(len(data)))
	})
}

// checkEstimate fails unless est adds up for a file of size bytes.
func checkEstimate(t *testing.T, est engine.ModelEstimate, ctx int, size uint64) {
	t.Helper()
	if est.Name == "" || est.Arch == "" {
		t.Errorf("name %q, arch %q: want both", est.Name, est.Arch)
	}
	if est.Layers < 0 || len(est.LayerBytes) != est.Layers {
		t.Fatalf("%d layers but %d layer sizes", est.Layers, len(est.LayerBytes))
	}
	if est.CtxSize <= 0 || (ctx > 0 && est.CtxSize != ctx) {
		t.Errorf("context %d for a request of %d", est.CtxSize, ctx)
	}
	sum := est.OutputBytes
	var carry uint64
	for _, b := range est.LayerBytes {
		sum, carry = bits.Add64(sum, b, carry)
	}
	if carry != 0 || sum != est.WeightBytes {
		t.Errorf("layers and output add up to %d (carry %d), weights are %d", sum, carry, est.WeightBytes)
	}
	if est.WeightBytes > size {
		t.Errorf("weights of %d bytes in a %d-byte file", est.WeightBytes, size)
	}
	hi, kv := bits.Mul64(uint64(est.Layers), est.KVBytesPerLayer)
	total, c1 := bits.Add64(est.WeightBytes, kv, 0)
	total, c2 := bits.Add64(total, est.ComputeBytes, 0)
	if hi != 0 || c1 != 0 || c2 != 0 || total != est.TotalBytes {
		t.Errorf("total %d, want weights %d + %d layers × %d + compute %d without overflow",
			est.TotalBytes, est.WeightBytes, est.Layers, est.KVBytesPerLayer, est.ComputeBytes)
	}
	if est.TotalBytes < est.WeightBytes {
		t.Errorf("total %d is less than the weights %d", est.TotalBytes, est.WeightBytes)
	}
}

// allocatedBytes is the heap allocated by this process so far.
func allocatedBytes() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// estimateSeeds returns a small valid model from ggufgen, first, and broken
// variants of it.
func estimateSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	var buf bytes.Buffer
	m := ggufgen.TinyLlama{Vocab: ggufgen.MinVocab, Embd: 2, Layers: 2, Heads: 1, KVHeads: 1, FF: 2, Context: 64, Seed: 1}
	if err := ggufgen.Write(&buf, m); err != nil {
		tb.Fatal(err)
	}
	g := gguf{tb: tb, b: buf.Bytes()}
	seeds := [][]byte{g.b}
	add := func(b []byte) { seeds = append(seeds, b) }

	// Without its tokenizer the model is half the size: the mutator finds
	// the header, the counts and the tensor infos sooner.
	bare := g.dropArray("tokenizer.ggml.tokens")
	bare = gguf{tb: tb, b: bare}.dropArray("tokenizer.ggml.scores")
	bare = gguf{tb: tb, b: bare}.dropArray("tokenizer.ggml.token_type")
	add(bare)

	// Truncated: in the header, in the metadata, in the tensor infos, in the data.
	for _, n := range []int{3, 4, 8, 20, 24, 40, g.value("tokenizer.ggml.tokens") + 100,
		g.tensor("token_embd.weight") + 10, len(g.b) - 100, len(g.b) - 1} {
		add(g.b[:n])
	}

	// Counts and lengths the file cannot hold.
	for _, n := range []uint64{1 << 60, math.MaxUint64, 1 << 31} {
		add(g.put64(8, n))                                                        // tensors
		add(g.put64(16, n))                                                       // metadata keys
		add(g.put64(24, n))                                                       // the first key's length
		add(g.put64(g.value("tokenizer.ggml.tokens")+8, n))                       // array length
		add(g.put64(g.value("tokenizer.ggml.tokens")+16, n))                      // first token's length
		add(g.put64(g.tensor("token_embd.weight")-8-len("token_embd.weight"), n)) // tensor name length
		add(g.put64(g.tensor("token_embd.weight")+4, n))                          // a dimension
		add(g.put64(g.tensor("output_norm.weight")+4+8+4, n))                     // an offset
		add(g.put64(g.tensor("output_norm.weight")+4+8+4, uint64(len(g.b))))      // offset at EOF
	}
	add(g.put32(4, 1))                                  // version 1: 32-bit lengths
	add(g.put32(4, 4))                                  // an unknown version
	add(g.put32(g.tensor("token_embd.weight"), 0))      // no dimensions
	add(g.put32(g.tensor("token_embd.weight"), 5))      // more than ggml's 4
	add(g.put64(g.tensor("token_embd.weight")+4, 0))    // an empty dimension
	add(g.put32(g.tensor("output_norm.weight")+12, 4))  // a removed tensor type
	add(g.put32(g.tensor("output_norm.weight")+12, 99)) // an unknown tensor type

	// Numbers that multiply past 64 bits, or make no sense.
	for _, key := range []string{"llama.block_count", "llama.context_length", "llama.embedding_length",
		"llama.attention.head_count", "llama.attention.head_count_kv", "llama.vocab_size",
		"llama.feed_forward_length", "llama.rope.dimension_count", "general.alignment"} {
		for _, v := range []uint32{0, 3, 1 << 16, 1<<16 + 1, math.MaxUint32} {
			add(g.put32(g.value(key)+4, v))
		}
		// Other types where a uint32 belongs.
		add(g.retype(key, 8, str("12")))
		add(g.retype(key, 6, le32(math.Float32bits(float32(math.Inf(1))))))
		add(g.retype(key, 7, []byte{1}))
		add(g.retype(key, 5, le32(math.MaxUint32))) // int32 -1
		add(g.retype(key, 10, le64(1<<62)))
		add(g.retype(key, 11, le64(math.MaxUint64))) // int64 -1
		add(g.retype(key, 9, append(le32(4), append(le64(2), 0, 0, 0, 0, 0, 0, 0, 0)...)))
		add(g.retype(key, 9, append(le32(9), le64(1)...))) // an array of arrays
		add(g.retype(key, 13, nil))                        // an unknown type
	}
	add(g.retype("general.architecture", 4, le32(7)))
	add(g.retype("general.architecture", 8, str("")))
	add(g.retype("general.architecture", 8, str("clip")))
	add(g.retype("general.name", 8, str("bad\xff\x00utf8")))
	add(g.put32(g.value("tokenizer.ggml.tokens")+4, 99)) // an array of an unknown type
	add(g.put32(g.value("tokenizer.ggml.tokens")+4, 9))  // an array of arrays

	// Keys the parser sizes allocations by.
	for _, kv := range [][]byte{
		g.kv("split.tensors.count", 10, le64(1<<40)),
		g.kv("split.tensors.count", 11, le64(math.MaxUint64)),
		g.kv("split.tensors.count", 8, str("99999999999")),
		g.kv("clip.vision.block_count", 4, le32(math.MaxUint32)),
		g.kv("llama.feed_forward_length", 9, append(le32(4), le64(1<<40)...)),
	} {
		add(g.insertKV(kv))
	}
	return seeds
}

// gguf edits a GGUF file that ggufgen wrote: version 3, little-endian.
type gguf struct {
	tb testing.TB
	b  []byte
}

// value returns the offset of key's value type; the value follows it.
func (g gguf) value(key string) int {
	i := bytes.Index(g.b, append(le64(uint64(len(key))), key...))
	if i < 0 {
		g.tb.Fatalf("no key %q", key)
	}
	return i + 8 + len(key)
}

// tensor returns the offset of the named tensor's dimension count.
func (g gguf) tensor(name string) int { return g.value(name) }

func (g gguf) put32(at int, v uint32) []byte {
	b := bytes.Clone(g.b)
	binary.LittleEndian.PutUint32(b[at:], v)
	return b
}

func (g gguf) put64(at int, v uint64) []byte {
	b := bytes.Clone(g.b)
	binary.LittleEndian.PutUint64(b[at:], v)
	return b
}

// retype gives a uint32 or string key a value of another type. The file's
// tail is padded so the tensor data still fits.
func (g gguf) retype(key string, typ uint32, value []byte) []byte {
	at := g.value(key)
	old := 4 + 4 // type and uint32
	if binary.LittleEndian.Uint32(g.b[at:]) == 8 {
		old = 4 + 8 + int(binary.LittleEndian.Uint64(g.b[at+4:]))
	}
	if binary.LittleEndian.Uint32(g.b[at:]) == 9 {
		g.tb.Fatalf("retype %q: arrays are not supported", key)
	}
	b := append(bytes.Clone(g.b[:at]), le32(typ)...)
	b = append(b, value...)
	b = append(b, g.b[at+old:]...)
	return append(b, make([]byte, 64)...)
}

// dropArray removes the key-value pair of an array of strings or of 32-bit
// numbers.
func (g gguf) dropArray(key string) []byte {
	at := g.value(key)
	start := at - 8 - len(key)
	elem, n := binary.LittleEndian.Uint32(g.b[at+4:]), binary.LittleEndian.Uint64(g.b[at+8:])
	end := at + 16
	for range n {
		if elem == 8 {
			end += 8 + int(binary.LittleEndian.Uint64(g.b[end:]))
		} else {
			end += 4
		}
	}
	b := g.put64(16, binary.LittleEndian.Uint64(g.b[16:])-1)
	b = append(b[:start:start], g.b[end:]...)
	return append(b, make([]byte, 64)...)
}

// kv encodes a key-value pair.
func (g gguf) kv(key string, typ uint32, value []byte) []byte {
	return append(append(str(key), le32(typ)...), value...)
}

// insertKV adds an encoded key-value pair before the others.
func (g gguf) insertKV(kv []byte) []byte {
	b := g.put64(16, binary.LittleEndian.Uint64(g.b[16:])+1)
	b = append(append(b[:24:24], kv...), g.b[24:]...)
	return append(b, make([]byte, 64)...)
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
func str(s string) []byte  { return append(le64(uint64(len(s))), s...) }
