// Package ggufgen writes tiny llama models with random weights in the GGUF v3
// format. The files load and generate (gibberish) in llama.cpp, which lets
// tests exercise the engine on machines that have no real model to hand.
//
// Output is deterministic: the same TinyLlama, seed included, always produces
// the same bytes.
package ggufgen

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// Alignment is the byte alignment of the tensor data section and of every
// tensor in it, recorded in the file as general.alignment.
const Alignment = 32

// Limits on a TinyLlama. They keep the models small enough to write in a
// test (the largest is 2 GiB, of the size of a real small model) and the
// size arithmetic far from overflow.
const (
	MaxDim    = 1 << 16 // largest Vocab, Embd, FF or Context
	MaxLayers = 256     // largest Layers
	MaxParams = 1 << 30 // largest total weight count (4 GiB of F32)
)

// Tokenizer layout: <unk>, <s> and </s>, then the 256 byte tokens, then
// ordinary pieces.
const (
	unkID = 0
	bosID = 1
	eosID = 2

	firstByteToken = 3
	numSpecial     = firstByteToken + 256

	// MinVocab is the smallest vocabulary: the special and byte tokens.
	MinVocab = numSpecial
)

// SentencePiece token types, as llama.cpp numbers them.
const (
	tokenNormal      int32 = 1
	tokenUnknown     int32 = 2
	tokenControl     int32 = 3
	tokenUserDefined int32 = 4
	tokenByte        int32 = 6
)

// rmsEpsilon is llama.attention.layer_norm_rms_epsilon.
const rmsEpsilon = 1e-5

// weightScale is the standard deviation of the random weights.
const weightScale = 0.02

// TinyLlama describes a llama-architecture model to generate.
type TinyLlama struct {
	Vocab   int   // tokens in the vocabulary, at least MinVocab
	Embd    int   // embedding width
	Layers  int   // transformer blocks
	Heads   int   // attention heads; must divide Embd
	KVHeads int   // key/value heads; must divide Heads
	FF      int   // feed-forward width
	Context int   // training context length
	Seed    int64 // seed of the random weights
	// Pooling is llama.pooling_type as llama.cpp numbers it (1 mean,
	// 2 cls, 3 last, 4 rank): a model made for embeddings. 0 writes no
	// pooling type, as a chat model has none.
	Pooling uint32
	// ChatTemplate is written as tokenizer.chat_template when set.
	ChatTemplate string
	// Pieces are user-defined tokens, placed right after the byte
	// tokens: text the tokenizer keeps whole, such as a tool-call tag.
	Pieces []string
	// Prefer lists tokens the model emits before any other, most
	// preferred first, whatever its input: "</s>" for end of text, or a
	// piece of the vocabulary (one of Pieces, or a single character).
	// Where a grammar rules out the first, the model emits the second,
	// and so on, which makes a random model follow a grammar's shortest
	// path: it answers a forced tool call at once.
	Prefer []string
	// InertFrom, above 0, makes the blocks from this index on add nothing
	// to the residual stream: their attention and feed-forward output
	// projections are zero. The model then decodes exactly as the same
	// TinyLlama with Layers: InertFrom does (the weights come from one
	// random stream in file order, so the first blocks are the same),
	// while it costs every block's bytes and work: a target and draft
	// pair for speculative decoding whose guesses always hold.
	InertFrom int
}

// DefaultTinyLlama returns a model of about 1 MiB, shaped like the
// stories260K test model.
func DefaultTinyLlama() TinyLlama {
	return TinyLlama{
		Vocab:   512,
		Embd:    64,
		Layers:  4,
		Heads:   8,
		KVHeads: 4,
		FF:      172,
		Context: 512,
		Seed:    1,
	}
}

// Validate reports every way in which m cannot describe a loadable model.
func (m TinyLlama) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	inRange := func(name string, v, lo, hi int) bool {
		if v < lo || v > hi {
			bad("%s is %d, want %d to %d", name, v, lo, hi)
			return false
		}
		return true
	}
	inRange("vocab", m.Vocab, MinVocab, MaxDim)
	embdOK := inRange("embd", m.Embd, 1, MaxDim)
	inRange("layers", m.Layers, 1, MaxLayers)
	headsOK := inRange("heads", m.Heads, 1, MaxDim)
	kvOK := inRange("kv heads", m.KVHeads, 1, MaxDim)
	inRange("ff", m.FF, 1, MaxDim)
	inRange("context", m.Context, 1, MaxDim)
	if len(m.Pieces) > m.Vocab-MinVocab {
		bad("%d pieces do not fit a vocabulary of %d beside its %d special and byte tokens", len(m.Pieces), m.Vocab, MinVocab)
	} else if _, err := m.preferred(); err != nil {
		errs = append(errs, err)
	}
	if m.InertFrom < 0 || m.InertFrom > m.Layers {
		bad("inert from is %d, want 0 (none) to layers (%d)", m.InertFrom, m.Layers)
	}
	if m.Pooling > 4 {
		bad("pooling is %d, want 0 (none) to 4 (rank)", m.Pooling)
	}
	if embdOK && headsOK {
		if m.Embd%m.Heads != 0 {
			bad("heads (%d) does not divide embd (%d)", m.Heads, m.Embd)
		} else if d := m.Embd / m.Heads; d%2 != 0 {
			bad("head size embd/heads (%d/%d = %d) is odd; rotary embeddings need it even", m.Embd, m.Heads, d)
		}
	}
	if headsOK && kvOK && m.Heads%m.KVHeads != 0 {
		bad("kv heads (%d) does not divide heads (%d)", m.KVHeads, m.Heads)
	}
	if len(errs) == 0 {
		if p := m.params(); p > MaxParams {
			bad("model has %d weights, more than the %d allowed", p, MaxParams)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("ggufgen: invalid model: %w", errors.Join(errs...))
	}
	return nil
}

// headDim is the width of one attention head.
func (m TinyLlama) headDim() int { return m.Embd / m.Heads }

// kvDim is the width of the key and value projections.
func (m TinyLlama) kvDim() int { return m.headDim() * m.KVHeads }

// params counts the weights of a model whose fields are within limits.
func (m TinyLlama) params() int64 {
	var n int64
	for _, t := range m.tensors() {
		n += t.elements()
	}
	return n
}

// tensor is one weight tensor. Dims are in GGUF order, fastest-varying first.
type tensor struct {
	name string
	dims []int
	ones bool // a norm weight, filled with 1 rather than random values
	zero bool // an inert block's output projection, filled with 0
}

func (t tensor) elements() int64 {
	n := int64(1)
	for _, d := range t.dims {
		n *= int64(d)
	}
	return n
}

func (t tensor) bytes() int64 { return 4 * t.elements() }

// tensors lists the model's tensors with llama.cpp's names and shapes, in the
// order they are written.
func (m TinyLlama) tensors() []tensor {
	e, kv, ff := m.Embd, m.kvDim(), m.FF
	ts := []tensor{
		{name: "token_embd.weight", dims: []int{e, m.Vocab}},
		{name: "output_norm.weight", dims: []int{e}, ones: true},
		{name: "output.weight", dims: []int{e, m.Vocab}},
	}
	for i := range m.Layers {
		blk := func(s string) string { return fmt.Sprintf("blk.%d.%s.weight", i, s) }
		inert := m.InertFrom > 0 && i >= m.InertFrom
		ts = append(ts,
			tensor{name: blk("attn_norm"), dims: []int{e}, ones: true},
			tensor{name: blk("attn_q"), dims: []int{e, e}},
			tensor{name: blk("attn_k"), dims: []int{e, kv}},
			tensor{name: blk("attn_v"), dims: []int{e, kv}},
			tensor{name: blk("attn_output"), dims: []int{e, e}, zero: inert},
			tensor{name: blk("ffn_norm"), dims: []int{e}, ones: true},
			tensor{name: blk("ffn_gate"), dims: []int{e, ff}},
			tensor{name: blk("ffn_up"), dims: []int{e, ff}},
			tensor{name: blk("ffn_down"), dims: []int{ff, e}, zero: inert},
		)
	}
	return ts
}

// metadata lists the model's key-value pairs in the order they are written.
func (m TinyLlama) metadata() []kv {
	tokens, scores, types := vocab(m.Vocab, m.Pieces)
	meta := []kv{
		kvString("general.architecture", "llama"),
		kvString("general.name", "potluck-tiny-llama"),
		kvUint32("general.alignment", Alignment),
		kvUint32("general.file_type", 0), // all F32
		kvUint32("llama.context_length", uint32(m.Context)),
		kvUint32("llama.embedding_length", uint32(m.Embd)),
		kvUint32("llama.block_count", uint32(m.Layers)),
		kvUint32("llama.feed_forward_length", uint32(m.FF)),
		kvUint32("llama.attention.head_count", uint32(m.Heads)),
		kvUint32("llama.attention.head_count_kv", uint32(m.KVHeads)),
		kvUint32("llama.rope.dimension_count", uint32(m.headDim())),
		kvFloat32("llama.attention.layer_norm_rms_epsilon", rmsEpsilon),
		kvUint32("llama.vocab_size", uint32(m.Vocab)),
		kvString("tokenizer.ggml.model", "llama"),
		kvStrings("tokenizer.ggml.tokens", tokens),
		kvFloat32s("tokenizer.ggml.scores", scores),
		kvInt32s("tokenizer.ggml.token_type", types),
		kvUint32("tokenizer.ggml.bos_token_id", bosID),
		kvUint32("tokenizer.ggml.eos_token_id", eosID),
		kvUint32("tokenizer.ggml.unknown_token_id", unkID),
		kvBool("tokenizer.ggml.add_bos_token", true),
		kvBool("tokenizer.ggml.add_eos_token", false),
	}
	if m.Pooling != 0 {
		meta = append(meta, kvUint32("llama.pooling_type", m.Pooling))
	}
	if m.ChatTemplate != "" {
		meta = append(meta, kvString("tokenizer.chat_template", m.ChatTemplate))
	}
	return meta
}

// Write writes m to w as a GGUF v3 file.
func Write(w io.Writer, m TinyLlama) error {
	if err := m.Validate(); err != nil {
		return err
	}
	meta := m.metadata()
	ts := m.tensors()
	e := newEncoder(w)

	e.write([]byte("GGUF"))
	e.u32(ggufVersion)
	e.u64(uint64(len(ts)))
	e.u64(uint64(len(meta)))
	for _, p := range meta {
		e.str(p.key)
		p.put(e)
	}
	var off int64
	for _, t := range ts {
		e.str(t.name)
		e.u32(uint32(len(t.dims)))
		for _, d := range t.dims {
			e.u64(uint64(d))
		}
		e.u32(ggmlTypeF32)
		e.u64(uint64(off))
		off += t.bytes()
		off += padding(off, Alignment)
	}
	e.pad(Alignment)

	bias, _ := m.preferred()
	rng := rand.New(rand.NewPCG(uint64(m.Seed), 0x9e3779b97f4a7c15))
	for _, t := range ts {
		for i := range t.elements() {
			v := float32(1)
			if !t.ones {
				v = float32(rng.NormFloat64() * weightScale)
			}
			v = bias.weight(t.name, m.Embd, i, v)
			if t.zero {
				v = 0 // drawn all the same: the stream stays in step
			}
			e.f32(v)
		}
		e.pad(Alignment)
	}
	if err := e.flush(); err != nil {
		return fmt.Errorf("ggufgen: write: %w", err)
	}
	return nil
}

// WriteFile writes m to path as a GGUF v3 file. It writes a temporary file in
// the same directory and renames it into place, so path never holds a partial
// model.
func WriteFile(path string, m TinyLlama) (err error) {
	if err := m.Validate(); err != nil {
		return err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("ggufgen: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	werr := fill(f, m)
	if cerr := f.Close(); werr == nil && cerr != nil {
		werr = fmt.Errorf("ggufgen: %w", cerr)
	}
	if werr != nil {
		return werr
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("ggufgen: %w", err)
	}
	return nil
}

// fill writes m to the new file f, makes it readable by all and flushes it to disk.
func fill(f *os.File, m TinyLlama) error {
	if err := Write(f, m); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("ggufgen: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("ggufgen: %w", err)
	}
	return nil
}
