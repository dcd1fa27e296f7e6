package engine_test

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
)

// tinyModel writes ggufgen's default model and returns its path.
func tinyModel(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := ggufgen.WriteFile(p, ggufgen.DefaultTinyLlama()); err != nil {
		t.Fatalf("generate model: %v", err)
	}
	return p
}

// The generated model is F32 with vocab 512, embd 64, 8 heads of width 8,
// 4 KV heads, FF 172 and 4 layers; the numbers below are worked out by hand.
func TestEstimateGeneratedModel(t *testing.T) {
	const (
		embd, vocab, ff, kvDim, heads = 64, 512, 172, 4 * 8, 8
		f32                           = 4

		embdBytes   = embd * vocab * f32 // token_embd and output each
		outputBytes = 2*embdBytes + embd*f32
		layerBytes  = 2*embd*f32 + // attn_norm, ffn_norm
			2*embd*embd*f32 + // attn_q, attn_output
			2*embd*kvDim*f32 + // attn_k, attn_v
			3*embd*ff*f32 // ffn_gate, ffn_up, ffn_down
	)
	path := tinyModel(t)

	for _, tc := range []struct {
		ctx, wantCtx int
	}{
		{ctx: 256, wantCtx: 256},
		{ctx: 0, wantCtx: 512}, // the model's training context
	} {
		got, err := engine.EstimateModel(path, tc.ctx)
		if err != nil {
			t.Fatal(err)
		}
		ctx := uint64(tc.wantCtx)
		kv := 2 * ctx * (kvDim + kvDim) // f16 K and V
		compute := uint64(4 * 512 * (vocab + heads*ctx))
		want := engine.ModelEstimate{
			Name:        "potluck-tiny-llama",
			Arch:        "llama",
			Layers:      4,
			WeightBytes: outputBytes + 4*layerBytes,
			LayerBytes:  []uint64{layerBytes, layerBytes, layerBytes, layerBytes},
			OutputBytes: outputBytes,
			// output.weight and output_norm
			OutputLayerBytes: outputBytes - vocab*embd*4,
			KVBytesPerLayer:  kv,
			CtxSize:          tc.wantCtx,
			ComputeBytes:     compute,
			TotalBytes:       outputBytes + 4*layerBytes + 4*kv + compute,
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("EstimateModel(ctx %d):\n got %+v\nwant %+v", tc.ctx, got, want)
		}
	}
	if layerBytes != 181760 || outputBytes != 262400 {
		t.Fatalf("hand arithmetic drifted: layer %d, output %d", layerBytes, outputBytes)
	}
}

// The estimate's weights add up to the file's tensor data, which is nearly
// the whole file for a tiny F32 model.
func TestEstimateStories260K(t *testing.T) {
	path, ok := enginetest.SharedModel()
	if !ok {
		t.Skip("stories260K.gguf not present in ../shared/models")
	}
	got, err := engine.EstimateModel(path, 512)
	if err != nil {
		t.Fatal(err)
	}
	if got.Arch != "llama" || got.Layers != 5 || got.CtxSize != 512 {
		t.Errorf("arch %q layers %d ctx %d, want llama 5 512", got.Arch, got.Layers, got.CtxSize)
	}
	// 4 KV heads of width 64/8 for K and for V, f16, 512 tokens.
	if want := uint64(2 * 512 * (32 + 32)); got.KVBytesPerLayer != want {
		t.Errorf("KVBytesPerLayer = %d, want %d", got.KVBytesPerLayer, want)
	}
	var blocks uint64
	for i, b := range got.LayerBytes {
		if b == 0 || b != got.LayerBytes[0] {
			t.Errorf("layer %d holds %d bytes, layer 0 %d", i, b, got.LayerBytes[0])
		}
		blocks += b
	}
	if blocks+got.OutputBytes != got.WeightBytes {
		t.Errorf("blocks %d + output %d != weights %d", blocks, got.OutputBytes, got.WeightBytes)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if size := uint64(fi.Size()); got.WeightBytes > size || got.WeightBytes < size*9/10 {
		t.Errorf("weights %d bytes in a %d-byte file", got.WeightBytes, size)
	}
	if want := got.WeightBytes + 5*got.KVBytesPerLayer + got.ComputeBytes; got.TotalBytes != want {
		t.Errorf("TotalBytes = %d, want %d", got.TotalBytes, want)
	}
}

func TestEstimateModelErrors(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(tinyModel(t))
	if err != nil {
		t.Fatal(err)
	}
	g := gguf{tb: t, b: good}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		path string
		want string
	}{
		{"missing", filepath.Join(dir, "absent.gguf"), "no such file"},
		{"directory", dir, "is a directory"},
		{"empty", write("empty.gguf", nil), "empty"},
		{"not gguf", write("text.gguf", []byte("this is a text file, not a model\n")), "not a GGUF file"},
		{"truncated header", write("head.gguf", good[:200]), "truncated"},
		{"truncated data", write("data.gguf", good[:len(good)-4096]), "truncated"},
		{"huge tensor count", write("count.gguf", g.put64(8, 1<<60)), "truncated"},
		{"huge block count", write("blocks.gguf", g.put32(g.value("llama.block_count")+4, math.MaxUint32)), "4294967295 blocks"},
		{"tensor past the end", write("offset.gguf", g.put64(g.tensor("output_norm.weight")+16, uint64(len(good)))), "past the end"},
		{"tensor size overflows", write("dims.gguf", g.put64(g.tensor("token_embd.weight")+4, math.MaxUint64)), "not a valid GGUF model"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := engine.EstimateModel(tc.path, 512)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.path) || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q should name %s and say %q", msg, tc.path, tc.want)
			}
		})
	}
}

// The generated model's 4 layers spread over the head and two equal workers
// with --split all: every worker holds layers, and the launch settings agree.
func TestPlanGeneratedModel(t *testing.T) {
	est, err := engine.EstimateModel(tinyModel(t), 512)
	if err != nil {
		t.Fatal(err)
	}
	const gib = 1 << 30
	p := engine.MakePlan(engine.PlanInput{
		Model: est,
		Head:  engine.Candidate{ID: "h", Name: "head", Devices: []engine.PlanDevice{{Name: "CPU", Backend: "CPU", Offer: 8 * gib}}, RPCProtocol: "8.0.0"},
		Workers: []engine.Candidate{{ID: "w2", Devices: []engine.PlanDevice{{Name: "CPU", Backend: "CPU", Offer: 8 * gib}}, RPCProtocol: "8.0.0"},
			{ID: "w1", Devices: []engine.PlanDevice{{Name: "CPU", Backend: "CPU", Offer: 8 * gib}}, RPCProtocol: "8.0.0"}},
		Protocol: "8.0.0",
		Mode:     engine.SplitAll,
	})
	if !p.Fits || len(p.Nodes) != 3 {
		t.Fatalf("plan:\n%s", p)
	}
	// The head's share is smaller by the embeddings it keeps; the last
	// worker takes the output, which --n-gpu-layers counts as a layer.
	if p.Nodes[0].Layers != 1 || p.GPULayers != 4 ||
		!slices.Equal(p.Workers, []string{"w1", "w2"}) || !slices.Equal(p.TensorSplit, []float64{2, 2}) {
		t.Errorf("got head %d layers, -ngl %d, workers %v, split %v; want 1, 4, [w1 w2], [2 2]\n%s",
			p.Nodes[0].Layers, p.GPULayers, p.Workers, p.TensorSplit, p)
	}
	if p.Need != est.TotalBytes+2*est.ComputeBytes {
		t.Errorf("need %d, want the single-process %d plus a compute buffer per worker", p.Need, est.TotalBytes)
	}
}
