package engine

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
	"sync"
	"time"

	gguf "github.com/gpustack/gguf-parser-go"
)

// Tokenizer is what a model's text is made of: two models whose tokenizers
// are equal turn the same text into the same token ids, which is what a
// draft model must do for the model it drafts for.
type Tokenizer struct {
	Model string `json:"model"` // tokenizer.ggml.model: "llama", "gpt2", …
	Vocab int    `json:"vocab"` // tokens in the vocabulary
	// Hash is SHA-256 over the tokens and the merges, in order.
	Hash string `json:"hash"`
	BOS  int64  `json:"bos"` // -1: none
	EOS  int64  `json:"eos"` // -1: none
}

// Differs says how t and o differ, in words; "" when they are the same.
func (t Tokenizer) Differs(o Tokenizer) string {
	switch {
	case t.Model != o.Model:
		return fmt.Sprintf("its tokenizer is %q, not %q", o.Model, t.Model)
	case t.Vocab != o.Vocab:
		return fmt.Sprintf("its vocabulary has %d tokens, not %d", o.Vocab, t.Vocab)
	case t.Hash != o.Hash:
		return "its vocabulary has other tokens or merges"
	case t.BOS != o.BOS:
		return fmt.Sprintf("its beginning-of-text token is %d, not %d", o.BOS, t.BOS)
	case t.EOS != o.EOS:
		return fmt.Sprintf("its end-of-text token is %d, not %d", o.EOS, t.EOS)
	}
	return ""
}

// tokenizers keeps what TokenizerOf read, by path, size and time: reading
// a large vocabulary takes a while, and the library is asked often.
var tokenizers sync.Map // tokenizerKey -> Tokenizer

type tokenizerKey struct {
	path string
	size int64
	mod  time.Time
}

// TokenizerOf reads the tokenizer of the GGUF model at path (the first
// shard of a split model).
func TokenizerOf(path string) (tok Tokenizer, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Tokenizer{}, fmt.Errorf("model %s: %w", path, err)
	}
	key := tokenizerKey{path, fi.Size(), fi.ModTime()}
	if v, ok := tokenizers.Load(key); ok {
		return v.(Tokenizer), nil
	}
	if err := vetFile(path); err != nil {
		return Tokenizer{}, err
	}
	defer func() {
		if r := recover(); r != nil {
			tok, err = Tokenizer{}, fmt.Errorf("model %s: not a valid GGUF model (malformed tokenizer: %v)", path, r)
		}
	}()
	// Without SkipLargeMetadata: the tokens themselves are needed.
	gf, err := gguf.ParseGGUFFile(path)
	if err != nil {
		return Tokenizer{}, ggufError(path, err)
	}
	tok = tokenizerFrom(gf.Header.MetadataKV)
	if tok.Vocab == 0 {
		return Tokenizer{}, fmt.Errorf("model %s has no vocabulary (tokenizer.ggml.tokens)", path)
	}
	tokenizers.Store(key, tok)
	return tok, nil
}

// tokenizerFrom reads the tokenizer's keys.
func tokenizerFrom(kvs gguf.GGUFMetadataKVs) Tokenizer {
	tok := Tokenizer{BOS: -1, EOS: -1}
	if kv, ok := kvs.Get("tokenizer.ggml.model"); ok && kv.ValueType == gguf.GGUFMetadataValueTypeString {
		tok.Model = kv.ValueString()
	}
	h := sha256.New()
	if kv, ok := kvs.Get("tokenizer.ggml.tokens"); ok && kv.ValueType == gguf.GGUFMetadataValueTypeArray {
		a := kv.ValueArray()
		tok.Vocab = int(a.Len)
		hashStrings(h, "tokens", a)
	}
	if kv, ok := kvs.Get("tokenizer.ggml.merges"); ok && kv.ValueType == gguf.GGUFMetadataValueTypeArray {
		hashStrings(h, "merges", kv.ValueArray())
	}
	tok.Hash = hex.EncodeToString(h.Sum(nil))
	for key, p := range map[string]*int64{"tokenizer.ggml.bos_token_id": &tok.BOS, "tokenizer.ggml.eos_token_id": &tok.EOS} {
		if kv, ok := kvs.Get(key); ok && kv.ValueType.IsNumeric() {
			*p = gguf.ValueNumeric[int64](kv)
		}
	}
	return tok
}

// hashStrings writes a string array to h, each string after its length, so
// that no two arrays hash alike by where their strings break.
func hashStrings(h hash.Hash, name string, a gguf.GGUFMetadataKVArrayValue) {
	var n [8]byte
	h.Write([]byte(name))
	binary.LittleEndian.PutUint64(n[:], a.Len)
	h.Write(n[:])
	if a.Type != gguf.GGUFMetadataValueTypeString {
		return
	}
	for _, s := range a.ValuesString() {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
}
