package ggufgen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	gguf "github.com/gpustack/gguf-parser-go"
)

// oddLlama has sizes that are not multiples of the alignment, so that the
// padding between tensors is exercised.
var oddLlama = TinyLlama{Vocab: 300, Embd: 24, Layers: 2, Heads: 3, KVHeads: 1, FF: 50, Context: 128, Seed: 7}

func TestDefaultTinyLlamaIsSmall(t *testing.T) {
	m := DefaultTinyLlama()
	if err := m.Validate(); err != nil {
		t.Fatalf("DefaultTinyLlama().Validate() = %v", err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, m); err != nil {
		t.Fatal(err)
	}
	if got, limit := buf.Len(), 4<<20; got > limit {
		t.Errorf("default model is %d bytes, want at most %d", got, limit)
	}
}

func TestWriteFileParsesBack(t *testing.T) {
	tests := []struct {
		name string
		m    TinyLlama
	}{
		{"default", DefaultTinyLlama()},
		{"odd sizes", oddLlama},
		{"multi-head kv", TinyLlama{Vocab: MinVocab, Embd: 32, Layers: 1, Heads: 4, KVHeads: 4, FF: 64, Context: 64, Seed: -3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tiny.gguf")
			if err := WriteFile(path, tt.m); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.ParseGGUFFile(path)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			checkHeader(t, f, tt.m)
			checkTokenizer(t, f, tt.m)
			checkTensors(t, f, tt.m)
			checkData(t, path, f)
		})
	}
}

func checkHeader(t *testing.T, f *gguf.GGUFFile, m TinyLlama) {
	t.Helper()
	if f.Header.Version != gguf.GGUFVersionV3 {
		t.Errorf("version = %v, want v3", f.Header.Version)
	}
	a := f.Architecture()
	if a.Architecture != "llama" {
		t.Errorf("architecture = %q, want llama", a.Architecture)
	}
	nums := []struct {
		key  string
		want uint64
	}{
		{"general.alignment", Alignment},
		{"general.file_type", 0},
		{"llama.context_length", uint64(m.Context)},
		{"llama.embedding_length", uint64(m.Embd)},
		{"llama.block_count", uint64(m.Layers)},
		{"llama.feed_forward_length", uint64(m.FF)},
		{"llama.attention.head_count", uint64(m.Heads)},
		{"llama.attention.head_count_kv", uint64(m.KVHeads)},
		{"llama.rope.dimension_count", uint64(m.Embd / m.Heads)},
		{"tokenizer.ggml.bos_token_id", 1},
		{"tokenizer.ggml.eos_token_id", 2},
		{"tokenizer.ggml.unknown_token_id", 0},
	}
	for _, n := range nums {
		kv, ok := f.Header.MetadataKV.Get(n.key)
		if !ok {
			t.Errorf("metadata %s missing", n.key)
			continue
		}
		if kv.ValueType != gguf.GGUFMetadataValueTypeUint32 {
			t.Errorf("metadata %s is a %v, want uint32", n.key, kv.ValueType)
			continue
		}
		if got := uint64(kv.ValueUint32()); got != n.want {
			t.Errorf("metadata %s = %d, want %d", n.key, got, n.want)
		}
	}
	if kv, ok := f.Header.MetadataKV.Get("llama.attention.layer_norm_rms_epsilon"); !ok || kv.ValueFloat32() != 1e-5 {
		t.Errorf("rms epsilon = %v (present %v), want 1e-5", kv.Value, ok)
	}
	if kv, ok := f.Header.MetadataKV.Get("general.name"); !ok || kv.ValueString() == "" {
		t.Errorf("general.name missing or empty")
	}
	if uint64(a.BlockCount) != uint64(m.Layers) || uint64(a.EmbeddingLength) != uint64(m.Embd) {
		t.Errorf("parsed block count %d, embedding %d; want %d, %d", a.BlockCount, a.EmbeddingLength, m.Layers, m.Embd)
	}
}

func checkTokenizer(t *testing.T, f *gguf.GGUFFile, m TinyLlama) {
	t.Helper()
	kvs := f.Header.MetadataKV
	if kv, ok := kvs.Get("tokenizer.ggml.model"); !ok || kv.ValueString() != "llama" {
		t.Errorf("tokenizer.ggml.model = %v, want llama", kv.Value)
	}
	if kv, ok := kvs.Get("tokenizer.ggml.add_bos_token"); !ok || !kv.ValueBool() {
		t.Errorf("tokenizer.ggml.add_bos_token = %v, want true", kv.Value)
	}
	tokKV, ok1 := kvs.Get("tokenizer.ggml.tokens")
	scoreKV, ok2 := kvs.Get("tokenizer.ggml.scores")
	typeKV, ok3 := kvs.Get("tokenizer.ggml.token_type")
	if !ok1 || !ok2 || !ok3 {
		t.Fatalf("tokenizer arrays present: tokens %v, scores %v, token_type %v", ok1, ok2, ok3)
	}
	tokens := tokKV.ValueArray().ValuesString()
	scores := scoreKV.ValueArray().ValuesFloat32()
	types := typeKV.ValueArray().ValuesInt32()
	if len(tokens) != m.Vocab || len(scores) != m.Vocab || len(types) != m.Vocab {
		t.Fatalf("tokenizer arrays have %d tokens, %d scores, %d types; want %d each",
			len(tokens), len(scores), len(types), m.Vocab)
	}
	if got, want := tokens[:3], []string{"<unk>", "<s>", "</s>"}; !reflect.DeepEqual(got, want) {
		t.Errorf("first tokens = %q, want %q", got, want)
	}
	seen := make(map[string]int, len(tokens))
	for i, tok := range tokens {
		if j, dup := seen[tok]; dup {
			t.Errorf("token %q at %d and %d", tok, j, i)
		}
		seen[tok] = i
		var wantType int32
		switch {
		case i == 0:
			wantType = 2
		case i < 3:
			wantType = 3
		case i < 3+256:
			wantType = 6
			if want := fmt.Sprintf("<0x%02X>", i-3); tok != want {
				t.Errorf("token %d = %q, want %q", i, tok, want)
			}
		default:
			wantType = 1
		}
		if types[i] != wantType {
			t.Errorf("token %d (%q) has type %d, want %d", i, tok, types[i], wantType)
		}
	}
	if m.Vocab > MinVocab && tokens[MinVocab] != "▁" {
		t.Errorf("first ordinary piece = %q, want ▁", tokens[MinVocab])
	}
}

func checkTensors(t *testing.T, f *gguf.GGUFFile, m TinyLlama) {
	t.Helper()
	e, kv, ff, v := uint64(m.Embd), uint64(m.Embd/m.Heads*m.KVHeads), uint64(m.FF), uint64(m.Vocab)
	want := map[string][]uint64{
		"token_embd.weight":  {e, v},
		"output_norm.weight": {e},
		"output.weight":      {e, v},
	}
	for i := range m.Layers {
		for name, dims := range map[string][]uint64{
			"attn_norm":   {e},
			"attn_q":      {e, e},
			"attn_k":      {e, kv},
			"attn_v":      {e, kv},
			"attn_output": {e, e},
			"ffn_norm":    {e},
			"ffn_gate":    {e, ff},
			"ffn_up":      {e, ff},
			"ffn_down":    {ff, e},
		} {
			want[fmt.Sprintf("blk.%d.%s.weight", i, name)] = dims
		}
	}
	if got := len(f.TensorInfos); got != len(want) || f.Header.TensorCount != uint64(len(want)) {
		t.Errorf("%d tensors (header says %d), want %d", got, f.Header.TensorCount, len(want))
	}
	if f.TensorDataStartOffset%Alignment != 0 {
		t.Errorf("tensor data starts at %d, not a multiple of %d", f.TensorDataStartOffset, Alignment)
	}
	end := uint64(0)
	for _, ti := range f.TensorInfos {
		dims, ok := want[ti.Name]
		if !ok {
			t.Errorf("unexpected tensor %s", ti.Name)
			continue
		}
		delete(want, ti.Name)
		if !reflect.DeepEqual(ti.Dimensions, dims) {
			t.Errorf("%s dims = %v, want %v", ti.Name, ti.Dimensions, dims)
		}
		if ti.Type != gguf.GGMLTypeF32 {
			t.Errorf("%s type = %v, want F32", ti.Name, ti.Type)
		}
		if ti.Offset%Alignment != 0 {
			t.Errorf("%s offset %d is not a multiple of %d", ti.Name, ti.Offset, Alignment)
		}
		if ti.Offset < end {
			t.Errorf("%s at %d overlaps the tensor before, which ends at %d", ti.Name, ti.Offset, end)
		}
		end = ti.Offset + ti.Bytes()
	}
	for name := range want {
		t.Errorf("tensor %s missing", name)
	}
	end += uint64(padding(int64(end), Alignment))
	if got, want := uint64(f.Size), uint64(f.TensorDataStartOffset)+end; got != want {
		t.Errorf("file is %d bytes, want %d (data start %d + padded data %d)", got, want, f.TensorDataStartOffset, end)
	}
}

// checkData reads the tensors back: norms are all ones, other weights are
// small, finite and not all equal.
func checkData(t *testing.T, path string, f *gguf.GGUFFile) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range f.TensorInfos {
		start := uint64(f.TensorDataStartOffset) + ti.Offset
		data := raw[start : start+ti.Bytes()]
		vals := make([]float32, len(data)/4)
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		if strings.HasSuffix(ti.Name, "_norm.weight") {
			for i, v := range vals {
				if v != 1 {
					t.Errorf("%s[%d] = %v, want 1", ti.Name, i, v)
					break
				}
			}
			continue
		}
		distinct := make(map[float32]bool)
		for i, v := range vals {
			if math.IsNaN(float64(v)) || math.Abs(float64(v)) > 0.2 {
				t.Errorf("%s[%d] = %v, want a small finite weight", ti.Name, i, v)
				break
			}
			distinct[v] = true
		}
		if len(distinct) < len(vals)/2 {
			t.Errorf("%s has %d distinct values among %d, want random weights", ti.Name, len(distinct), len(vals))
		}
	}
}

func TestWriteIsDeterministic(t *testing.T) {
	write := func(m TinyLlama) []byte {
		t.Helper()
		var buf bytes.Buffer
		if err := Write(&buf, m); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	m := DefaultTinyLlama()
	a, b := write(m), write(m)
	if !bytes.Equal(a, b) {
		t.Error("two writes of the same model differ")
	}

	path := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := WriteFile(path, m); err != nil {
		t.Fatal(err)
	}
	c, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, c) {
		t.Error("WriteFile wrote different bytes from Write")
	}

	other := m
	other.Seed++
	d := write(other)
	if len(d) != len(a) {
		t.Fatalf("changing the seed changed the size from %d to %d", len(a), len(d))
	}
	if bytes.Equal(a, d) {
		t.Error("a different seed gave the same bytes")
	}
}

func TestValidate(t *testing.T) {
	def := DefaultTinyLlama()
	with := func(change func(*TinyLlama)) TinyLlama {
		m := def
		change(&m)
		return m
	}
	tests := []struct {
		name string
		m    TinyLlama
		want []string // substrings of the error; none means valid
	}{
		{"default", def, nil},
		{"odd sizes", oddLlama, nil},
		{"heads do not divide embd", with(func(m *TinyLlama) { m.Heads = 7 }), []string{"heads (7) does not divide embd (64)"}},
		{"kv heads do not divide heads", with(func(m *TinyLlama) { m.KVHeads = 3 }), []string{"kv heads (3) does not divide heads (8)"}},
		{"odd head size", with(func(m *TinyLlama) { m.Heads = 64; m.KVHeads = 64 }), []string{"head size", "is odd"}},
		{"vocab too small", with(func(m *TinyLlama) { m.Vocab = 100 }), []string{"vocab is 100, want 259 to"}},
		{"no layers", with(func(m *TinyLlama) { m.Layers = 0 }), []string{"layers is 0"}},
		{"negative ff", with(func(m *TinyLlama) { m.FF = -1 }), []string{"ff is -1"}},
		{"zero heads", with(func(m *TinyLlama) { m.Heads = 0 }), []string{"heads is 0"}},
		{"zero context", with(func(m *TinyLlama) { m.Context = 0 }), []string{"context is 0"}},
		{"too many weights", with(func(m *TinyLlama) { m.Embd = 4096; m.FF = 16384; m.Layers = 64 }), []string{"weights, more than"}},
		{"several problems", with(func(m *TinyLlama) { m.Vocab = 0; m.Embd = 0 }), []string{"vocab is 0", "embd is 0"}},
		{"rank pooling", with(func(m *TinyLlama) { m.Pooling = 4 }), nil},
		{"unknown pooling", with(func(m *TinyLlama) { m.Pooling = 5 }), []string{"pooling is 5"}},
		{"inert from the second block", with(func(m *TinyLlama) { m.InertFrom = 1 }), nil},
		{"inert past the last block", with(func(m *TinyLlama) { m.InertFrom = 5 }), []string{"inert from is 5, want 0 (none) to layers (4)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}

			if werr := Write(&bytes.Buffer{}, tt.m); werr == nil || werr.Error() != err.Error() {
				t.Errorf("Write() = %v, want %v", werr, err)
			}
			dir := t.TempDir()
			if werr := WriteFile(filepath.Join(dir, "bad.gguf"), tt.m); werr == nil {
				t.Error("WriteFile() = nil, want an error")
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("WriteFile of an invalid model left %d files behind", len(ents))
			}
		})
	}
}

func TestWriteFileReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tiny.gguf")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, oddLlama); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "tiny.gguf" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q, want only tiny.gguf", names)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got, []byte("GGUF")) {
		t.Errorf("file starts %q, want GGUF", got[:min(4, len(got))])
	}
}

func TestWriteFileMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "tiny.gguf")
	if err := WriteFile(path, DefaultTinyLlama()); err == nil {
		t.Fatal("WriteFile into a missing directory succeeded")
	}
}

var errBroken = errors.New("broken writer")

// brokenWriter accepts n bytes and then fails.
type brokenWriter struct{ n int }

func (w *brokenWriter) Write(p []byte) (int, error) {
	if len(p) <= w.n {
		w.n -= len(p)
		return len(p), nil
	}
	k := w.n
	w.n = 0
	return k, errBroken
}

func TestWriteReportsWriterErrors(t *testing.T) {
	for _, n := range []int{0, 100, 200 << 10} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			err := Write(&brokenWriter{n: n}, DefaultTinyLlama())
			if !errors.Is(err, errBroken) {
				t.Errorf("Write() = %v, want %v", err, errBroken)
			}
		})
	}
}

func TestPieces(t *testing.T) {
	next := pieces(nil)
	seen := make(map[string]bool)
	for i := range 20000 {
		p := next()
		if p == "" || seen[p] {
			t.Fatalf("piece %d = %q, empty or repeated", i, p)
		}
		seen[p] = true
	}
}

// An inert block's output projections are zero and nothing else changes:
// the bytes before them, the other blocks and the shared tensors are
// those of the same model without InertFrom.
func TestInertFrom(t *testing.T) {
	m := DefaultTinyLlama()
	var plain, inert bytes.Buffer
	if err := Write(&plain, m); err != nil {
		t.Fatal(err)
	}
	m.InertFrom = 2
	if err := Write(&inert, m); err != nil {
		t.Fatal(err)
	}
	if plain.Len() != inert.Len() {
		t.Fatalf("%d bytes, want %d", inert.Len(), plain.Len())
	}
	// Where the two differ, the inert file holds zeros, and only in the
	// attn_output and ffn_down of blocks 2 and 3.
	var zeroedAt []int64
	offsets := map[string][2]int64{}
	data := int64(plain.Len())
	for _, tn := range m.tensors() {
		data -= tn.bytes() + padding(tn.bytes(), Alignment)
	}
	at := data
	for _, tn := range m.tensors() {
		offsets[tn.name] = [2]int64{at, at + tn.bytes()}
		at += tn.bytes() + padding(tn.bytes(), Alignment)
	}
	a, b := plain.Bytes(), inert.Bytes()
	for i := range a {
		if a[i] != b[i] {
			if b[i] != 0 {
				t.Fatalf("byte %d is %#x, want 0 or %#x", i, b[i], a[i])
			}
			zeroedAt = append(zeroedAt, int64(i))
		}
	}
	want := []string{"blk.2.attn_output.weight", "blk.2.ffn_down.weight", "blk.3.attn_output.weight", "blk.3.ffn_down.weight"}
	for _, i := range zeroedAt {
		in := ""
		for name, r := range offsets {
			if i >= r[0] && i < r[1] {
				in = name
			}
		}
		if !slices.Contains(want, in) {
			t.Fatalf("byte %d, in %q, differs", i, in)
		}
	}
	for _, name := range want {
		r := offsets[name]
		for i := r[0]; i < r[1]; i++ {
			if b[i] != 0 {
				t.Fatalf("%s is not all zeros", name)
			}
		}
	}
}
