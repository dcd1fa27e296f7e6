package engine

import (
	"fmt"
	"path/filepath"
	"strings"

	gguf "github.com/gpustack/gguf-parser-go"
)

// ModelInfo is what a GGUF file says about itself, for a list of models.
type ModelInfo struct {
	Name  string `json:"name"`  // general.name, else the file name
	Type  string `json:"type"`  // general.type: "model", or "projector", "adapter", …
	Arch  string `json:"arch"`  // general.architecture, e.g. "llama"
	Quant string `json:"quant"` // the file type, e.g. "Q4_K_M"
	// Params is the parameter count, from the tensors' shapes.
	Params uint64 `json:"params"`
	// Context is the training context length in tokens.
	Context uint64 `json:"context"`
	// ChatTemplate says whether the file carries tokenizer.chat_template.
	ChatTemplate bool `json:"chat_template"`
	// Pooling is how the file says to pool token embeddings into one
	// (<arch>.pooling_type): "mean", "cls", "last" or "rank"; empty for
	// none, as in a chat model. See Capabilities.
	Pooling string `json:"pooling,omitempty"`
	// Bytes is the size of every file of the model.
	Bytes uint64 `json:"bytes"`
}

// IsModel says whether the file is a language model llama-server can
// serve on its own, as opposed to a vision projector or an adapter.
func (m ModelInfo) IsModel() bool {
	return m.Type == "" || m.Type == "model"
}

// DescribeModel reads the metadata of the GGUF model at path (the first
// shard of a split model) without reading its weights.
func DescribeModel(path string) (info ModelInfo, err error) {
	gf, err := readGGUF(path)
	if err != nil {
		return ModelInfo{}, err
	}
	return describeFile(path, gf)
}

// InspectModel is EstimateModel and DescribeModel with one read of the
// file's metadata, which a large vocabulary makes slow.
func InspectModel(path string, ctxSize int) (est ModelEstimate, estErr error, info ModelInfo, infoErr error) {
	gf, err := readGGUF(path)
	if err != nil {
		return ModelEstimate{}, err, ModelInfo{}, err
	}
	est, estErr = estimateFile(path, gf, ctxSize)
	info, infoErr = describeFile(path, gf)
	return est, estErr, info, infoErr
}

func describeFile(path string, gf *gguf.GGUFFile) (info ModelInfo, err error) {
	defer func() {
		if r := recover(); r != nil {
			info, err = ModelInfo{}, fmt.Errorf("model %s: not a valid GGUF model (malformed metadata: %v)", path, r)
		}
	}()
	meta := gf.Metadata()
	info = ModelInfo{
		Name:   meta.Name,
		Type:   meta.Type,
		Arch:   meta.Architecture,
		Quant:  quantName(meta.FileTypeDescriptor),
		Params: uint64(meta.Parameters),
		Bytes:  uint64(gf.Size),
	}
	if info.Name == "" {
		info.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	if info.IsModel() {
		info.Context = gf.Architecture().MaximumContextLength
	}
	if kv, ok := gf.Header.MetadataKV.Get("tokenizer.chat_template"); ok {
		info.ChatTemplate = kv.ValueType == gguf.GGUFMetadataValueTypeString && kv.ValueString() != ""
	}
	if kv, ok := gf.Header.MetadataKV.Get(info.Arch + ".pooling_type"); ok && info.Arch != "" {
		info.Pooling = poolingName(kv)
	}
	return info, nil
}

// quantName is the parser's file-type descriptor as people write it:
// "Q4_K_M" rather than "Q4_K_M (guessed)", "F16" for "MOSTLY_F16".
func quantName(desc string) string {
	desc, _, _ = strings.Cut(desc, " ")
	return strings.TrimPrefix(desc, "MOSTLY_")
}
