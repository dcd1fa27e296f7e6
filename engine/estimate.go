package engine

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	gguf "github.com/gpustack/gguf-parser-go"

	"github.com/potluck-gpu/potluck/internal/size"
)

// ComputeUBatch is the micro-batch, in tokens, that the compute-buffer
// estimate assumes: llama.cpp's default --ubatch-size.
const ComputeUBatch = 512

// ModelEstimate is what a GGUF model needs in memory when llama.cpp runs it
// with a given context size. The planner splits it over nodes: the repeating
// blocks (layers) can go anywhere, everything else stays with the head.
type ModelEstimate struct {
	Name   string `json:"name"` // general.name, else the file name
	Arch   string `json:"arch"` // general.architecture, e.g. "llama"
	Layers int    `json:"layers"`

	// WeightBytes is all tensor data in the file.
	WeightBytes uint64 `json:"weight_bytes"`
	// LayerBytes holds the weights of each repeating block, the tensors named
	// blk.N.*; it has Layers entries.
	LayerBytes []uint64 `json:"layer_bytes"`
	// OutputBytes is every weight outside the repeating blocks: token_embd,
	// output_norm, output and any other non-block tensor.
	OutputBytes uint64 `json:"output_bytes"`
	// OutputLayerBytes is what the device holding the output layer needs
	// of it: output.weight and output_norm. A model that ties its output
	// to the token embeddings (no output.weight) has llama.cpp copy the
	// embeddings there, and OutputTied is set: the head keeps its own.
	OutputLayerBytes uint64 `json:"output_layer_bytes"`
	OutputTied       bool   `json:"output_tied,omitempty"`

	// KVBytesPerLayer is one layer's f16 key and value cache for CtxSize
	// tokens: 2 bytes × CtxSize × (n_embd_k_gqa + n_embd_v_gqa).
	KVBytesPerLayer uint64 `json:"kv_bytes_per_layer"`
	CtxSize         int    `json:"ctx_size"`

	// ComputeBytes is the scratch memory of one llama.cpp device: the f32
	// logits and attention scores of one ComputeUBatch micro-batch,
	// 4 × ComputeUBatch × (n_vocab + n_head × CtxSize). It leaves out smaller
	// buffers and is an overestimate with flash attention; every node taking
	// part in a split allocates one.
	ComputeBytes uint64 `json:"compute_bytes"`

	// TotalBytes is what one process needs to run the model alone:
	// WeightBytes + Layers × KVBytesPerLayer + ComputeBytes.
	TotalBytes uint64 `json:"total_bytes"`
}

// maxModelBytes bounds every figure of an estimate: 4 PiB, more than any
// mesh offers. A file that claims more is corrupt, and the bound keeps the
// planner's sums of these figures far from overflow.
const maxModelBytes = 1 << 52

// EstimateModel reads the GGUF file at path and estimates its memory needs
// for a context of ctxSize tokens. ctxSize ≤ 0 means the model's training
// context, which is what llama-server uses when it is not given one.
func EstimateModel(path string, ctxSize int) (ModelEstimate, error) {
	gf, err := readGGUF(path)
	if err != nil {
		return ModelEstimate{}, err
	}
	return estimateFile(path, gf, ctxSize)
}

// readGGUF parses the GGUF file at path, with the other shards of a split
// model. The parser trusts some of what a file claims (a block count sizes a
// table), so vetFile reads each file's metadata first; what still makes the
// parser panic becomes an error.
func readGGUF(path string) (gf *gguf.GGUFFile, err error) {
	files := gguf.CompleteShardGGUFFilename(path)
	if files == nil {
		files = []string{path}
	}
	for _, p := range files {
		if err := vetFile(p); err != nil {
			return nil, err
		}
	}
	defer func() {
		if r := recover(); r != nil {
			gf, err = nil, fmt.Errorf("model %s: not a valid GGUF model: %v", path, r)
		}
	}()
	gf, err = gguf.ParseGGUFFile(path, gguf.SkipLargeMetadata())
	if err != nil {
		return nil, ggufError(path, err)
	}
	return gf, nil
}

// errNoFile is a model file that is not there: it says so as Unix does,
// and is fs.ErrNotExist.
var errNoFile = noFile{}

type noFile struct{}

func (noFile) Error() string        { return "no such file" }
func (noFile) Is(target error) bool { return target == fs.ErrNotExist }

// vetFile refuses a file that is no GGUF model, or whose header or metadata
// the parser should not be trusted with.
func vetFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		// The same words on every OS (Windows' own are "File not found.").
		return &fs.PathError{Op: "model", Path: path, Err: errNoFile}
	}
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return fmt.Errorf("model: %w", err)
	case fi.IsDir():
		return fmt.Errorf("model %s: is a directory, not a GGUF file", path)
	case fi.Size() == 0:
		return fmt.Errorf("model %s: file is empty, not a GGUF file", path)
	}
	if err := vetGGUF(f, fi.Size()); err != nil {
		return fmt.Errorf("model %s: %w", path, err)
	}
	return nil
}

// ggufError turns a parse failure into an error a person can act on.
func ggufError(path string, err error) error {
	switch {
	case errors.Is(err, gguf.ErrGGUFFileInvalidFormat):
		return fmt.Errorf("model %s: %w", path, errNotGGUF)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("model %s: GGUF file is truncated: %w", path, err)
	case strings.Contains(err.Error(), "remaining bytes"), strings.Contains(err.Error(), "follow the header"):
		// The parser's wording when a count, length or the tensor data
		// runs past the end of the file.
		return fmt.Errorf("model %s: GGUF file is truncated or corrupt: %w", path, err)
	}
	return fmt.Errorf("model %s: unreadable GGUF file: %w", path, err)
}

// estimateFile does the arithmetic on a parsed file. The parser panics on
// some malformed metadata (a key of an unexpected type); that becomes an
// error too.
func estimateFile(path string, gf *gguf.GGUFFile, ctxSize int) (est ModelEstimate, err error) {
	defer func() {
		if r := recover(); r != nil {
			est, err = ModelEstimate{}, fmt.Errorf("model %s: not a valid GGUF model (malformed metadata: %v)", path, r)
		}
	}()
	meta := gf.Metadata()
	arch := gf.Architecture()

	est.Name = meta.Name
	if est.Name == "" {
		est.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	est.Arch = meta.Architecture
	if est.Arch == "" {
		return ModelEstimate{}, fmt.Errorf("model %s: GGUF file names no general.architecture", path)
	}
	if arch.BlockCount > maxBlocks {
		return ModelEstimate{}, fmt.Errorf("model %s: implausible block count %d", path, arch.BlockCount)
	}
	est.Layers = int(arch.BlockCount)

	// The parser checks that the tensors' sizes add up to no more than the
	// file holds, but its sum may wrap, and it does not look at offsets.
	var data uint64 // bytes after the header; known for a file that is not split
	if len(gf.SplitSizes) == 1 && gf.TensorDataStartOffset >= 0 && gf.TensorDataStartOffset <= int64(gf.Size) {
		data = uint64(gf.Size) - uint64(gf.TensorDataStartOffset)
	}
	var c checked
	est.LayerBytes = make([]uint64, est.Layers)
	for _, ti := range gf.TensorInfos {
		b := ti.Bytes()
		var o checked
		if end := o.add(ti.Offset, b); data > 0 && (o.overflow || end > data) {
			return ModelEstimate{}, fmt.Errorf("model %s: GGUF file is truncated or corrupt: tensor %q lies past the end of the file", path, ti.Name)
		}
		est.WeightBytes = c.add(est.WeightBytes, b)
		if n, ok := blockIndex(ti.Name); ok && n < est.Layers {
			est.LayerBytes[n] += b
		} else {
			est.OutputBytes += b
			if ti.Name == "output.weight" || ti.Name == "output_norm.weight" || ti.Name == "output_norm.bias" {
				est.OutputLayerBytes += b
			}
		}
	}
	if _, ok := gf.TensorInfos.Get("output.weight"); !ok {
		if ti, ok := gf.TensorInfos.Get("token_embd.weight"); ok {
			est.OutputTied = true
			est.OutputLayerBytes += ti.Bytes()
		}
	}
	if c.overflow || est.WeightBytes > maxModelBytes {
		return ModelEstimate{}, fmt.Errorf("model %s: not a valid GGUF model: its tensors claim more than %s", path, size.Format(maxModelBytes))
	}

	if ctxSize <= 0 {
		ctxSize = int(min(arch.MaximumContextLength, 1<<24))
	}
	if ctxSize <= 0 {
		return ModelEstimate{}, fmt.Errorf("model %s: GGUF file gives no context length; pass a context size", path)
	}
	est.CtxSize = ctxSize
	ctx := uint64(ctxSize)

	kvHeads := arch.AttentionHeadCountKV
	if kvHeads == 0 {
		kvHeads = arch.AttentionHeadCount
	}
	kGQA := c.mul(uint64(arch.AttentionKeyLength), kvHeads)
	vGQA := c.mul(uint64(arch.AttentionValueLength), kvHeads)
	est.KVBytesPerLayer = c.mul(c.mul(2, ctx), c.add(kGQA, vGQA))

	vocab := arch.VocabularyLength
	if vocab == 0 {
		if ti, ok := gf.TensorInfos.Get("token_embd.weight"); ok && ti.NDimensions == 2 {
			vocab = ti.Dimensions[1]
		}
	}
	est.ComputeBytes = c.mul(4*ComputeUBatch, c.add(vocab, c.mul(arch.AttentionHeadCount, ctx)))

	est.TotalBytes = c.add(c.add(est.WeightBytes, c.mul(uint64(est.Layers), est.KVBytesPerLayer)), est.ComputeBytes)
	if c.overflow || est.TotalBytes > maxModelBytes {
		return ModelEstimate{}, fmt.Errorf("model %s: with a context of %d tokens it would need more than %s: "+
			"its metadata is implausible, or the context is too large", path, ctxSize, size.Format(maxModelBytes))
	}
	return est, nil
}

// checked does uint64 arithmetic and remembers whether any of it overflowed.
type checked struct{ overflow bool }

func (c *checked) add(a, b uint64) uint64 {
	s, carry := bits.Add64(a, b, 0)
	c.overflow = c.overflow || carry != 0
	return s
}

func (c *checked) mul(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	c.overflow = c.overflow || hi != 0
	return lo
}

// blockIndex returns N for a tensor named blk.N.*.
func blockIndex(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// layerWeights returns the weights of layer i. An estimate built without
// per-layer figures spreads the block weights evenly.
func (m ModelEstimate) layerWeights(i int) uint64 {
	if len(m.LayerBytes) == m.Layers {
		return m.LayerBytes[i]
	}
	if m.Layers == 0 || m.WeightBytes < m.OutputBytes {
		return 0
	}
	return (m.WeightBytes - m.OutputBytes) / uint64(m.Layers)
}

// meanLayerBytes is what an average layer needs: its weights and its cache.
func (m ModelEstimate) meanLayerBytes() uint64 {
	if m.Layers <= 0 {
		return 0
	}
	var sum uint64
	for i := range m.Layers {
		sum += m.layerWeights(i)
	}
	return sum/uint64(m.Layers) + m.KVBytesPerLayer
}
