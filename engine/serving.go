package engine

import (
	"slices"

	gguf "github.com/gpustack/gguf-parser-go"
)

// What a served model does, in the words of Ollama's /api/show.
const (
	CapCompletion = "completion" // generates text: chat, completions, responses, messages
	CapEmbedding  = "embedding"  // turns text into vectors: /v1/embeddings
	CapRerank     = "rerank"     // scores documents against a query: /v1/rerank
)

// poolingNames are llama.cpp's pooling types (enum llama_pooling_type) by
// the number GGUF files store.
var poolingNames = []string{"none", "mean", "cls", "last", "rank"}

// poolingName is a <arch>.pooling_type value as llama-server's --pooling
// names it; "" for none or a value it does not know.
func poolingName(kv gguf.GGUFMetadataKV) string {
	if !kv.ValueType.IsNumeric() {
		return ""
	}
	n := gguf.ValueNumeric[int64](kv)
	if n <= 0 || n >= int64(len(poolingNames)) {
		return ""
	}
	return poolingNames[n]
}

// encoderArchs are llama.cpp's architectures that only encode: they make
// embeddings and cannot generate text.
var encoderArchs = []string{
	"bert", "modern-bert", "nomic-bert", "nomic-bert-moe", "neo-bert",
	"jina-bert-v2", "jina-bert-v3", "eurobert", "t5encoder", "gemma-embedding",
}

// Capabilities is what the model file is made for: a reranker (it pools by
// rank), an embedding model (it names a pooling, or its architecture only
// encodes), or otherwise a generative model.
func (m ModelInfo) Capabilities() []string {
	switch {
	case m.Pooling == "rank":
		return []string{CapRerank}
	case m.Pooling != "" || slices.Contains(encoderArchs, m.Arch):
		return []string{CapEmbedding}
	}
	return []string{CapCompletion}
}

// Serving is how llama-server is started for a model, and what it then
// serves.
type Serving struct {
	Embeddings   bool     // --embeddings
	Rerank       bool     // --rerank
	Pooling      string   // --pooling; empty: the file's own
	Capabilities []string // what the model then does
}

// PlanServing decides how to serve the model described by info. Embedding
// and rerank models get the endpoint they are made for. A generative model
// also serves embeddings when embeddings is set, pooled by the mean of its
// token embeddings, as it names no pooling of its own.
func PlanServing(info ModelInfo, embeddings bool) Serving {
	caps := info.Capabilities()
	s := Serving{Capabilities: caps}
	switch {
	case slices.Contains(caps, CapRerank):
		s.Rerank = true
	case slices.Contains(caps, CapEmbedding):
		s.Embeddings = true
		if info.Pooling == "" {
			s.Pooling = "mean" // an encoder that names none
		}
	case embeddings:
		s.Embeddings, s.Pooling = true, "mean"
		s.Capabilities = append(caps, CapEmbedding)
	}
	return s
}

// Apply sets the spec's serving flags.
func (s Serving) Apply(spec *ServerSpec) {
	spec.Embeddings, spec.Rerank, spec.Pooling = s.Embeddings, s.Rerank, s.Pooling
}
