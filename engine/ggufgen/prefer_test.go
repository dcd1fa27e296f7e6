package ggufgen

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	gguf "github.com/gpustack/gguf-parser-go"
)

// ToolLlama's file carries its template and pieces, and its weights carry
// the preference in the ranks given: the output row of each preferred
// token reads the embeddings' shared feature, more for the more preferred.
func TestToolLlamaFile(t *testing.T) {
	m := ToolLlama()
	path := filepath.Join(t.TempDir(), "tools.gguf")
	if err := WriteFile(path, m); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.ParseGGUFFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kvs := f.Header.MetadataKV
	if kv, ok := kvs.Get("tokenizer.chat_template"); !ok || !strings.Contains(kv.ValueString(), "<tool_calls>") {
		t.Errorf("tokenizer.chat_template missing or without <tool_calls>: %v", ok)
	}
	tokKV, _ := kvs.Get("tokenizer.ggml.tokens")
	typeKV, _ := kvs.Get("tokenizer.ggml.token_type")
	tokens, types := tokKV.ValueArray().ValuesString(), typeKV.ValueArray().ValuesInt32()
	for i, p := range m.Pieces {
		id := numSpecial + i
		if tokens[id] != p || types[id] != tokenUserDefined {
			t.Errorf("token %d = %q type %d, want the user-defined piece %q", id, tokens[id], types[id], p)
		}
		if n := strings.Count(strings.Join(tokens, "\x00")+"\x00", p+"\x00"); n != 1 && len(p) > 1 {
			t.Errorf("piece %q is %d times in the vocabulary", p, n)
		}
	}

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	row := func(name string, tok int) []float32 {
		for _, ti := range f.TensorInfos {
			if ti.Name == name {
				start := uint64(f.TensorDataStartOffset) + ti.Offset + uint64(4*tok*m.Embd)
				out := make([]float32, m.Embd)
				for i := range out {
					out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[start+uint64(4*i):]))
				}
				return out
			}
		}
		t.Fatalf("no tensor %s", name)
		return nil
	}
	for _, tok := range []int{0, 7, m.Vocab - 1} {
		if v := row("token_embd.weight", tok)[0]; v != preferFeature {
			t.Errorf("token_embd[%d][0] = %v, want %v", tok, v, preferFeature)
		}
	}
	last := float32(math.Inf(1))
	for _, p := range m.Prefer {
		w := row("output.weight", slices.Index(tokens, p))[0]
		if w >= last || w < preferStep {
			t.Errorf("output weight of %q = %v, want at least %v and below the one before (%v)", p, w, preferStep, last)
		}
		last = w
	}
	if w := row("output.weight", slices.Index(tokens, "a"))[0]; math.Abs(float64(w)) > 0.2 {
		t.Errorf("output weight of an ordinary token = %v, want a small random one", w)
	}
}

func TestPreferValidation(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*TinyLlama)
		want string
	}{
		{"unknown token", func(m *TinyLlama) { m.Prefer = []string{"<nope>"} }, `"<nope>" is not`},
		{"byte token", func(m *TinyLlama) { m.Prefer = []string{"<0x41>"} }, `"<0x41>" is not`},
		{"twice", func(m *TinyLlama) { m.Prefer = []string{"a", "a"} }, "listed twice"},
		{"too many pieces", func(m *TinyLlama) { m.Vocab = MinVocab + 1; m.Pieces = []string{"x1", "x2"} }, "do not fit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := DefaultTinyLlama()
			tt.edit(&m)
			if err := m.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if err := ToolLlama().Validate(); err != nil {
		t.Errorf("ToolLlama: %v", err)
	}
}
