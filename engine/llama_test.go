package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
)

func TestRuntimeVersions(t *testing.T) {
	rt := enginetest.Runtime(t)
	if rt.Worker.Path == "" {
		t.Fatalf("no RPC worker found beside %s", rt.Server.Path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := rt.Probe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Server == "" || v.RPCProtocol == "" {
		t.Errorf("versions = %+v, want server and RPC protocol", v)
	}
	t.Logf("llama-server %s, RPC protocol %s", v.Server, v.RPCProtocol)
}

func TestServerGreedyCompletion(t *testing.T) {
	rt := enginetest.Runtime(t)
	m := enginetest.TestModel(t)
	base := enginetest.Server(t, rt, engine.ServerSpec{Model: m.Path, Alias: m.Alias})
	text := enginetest.Complete(t, base, 24)
	if strings.TrimSpace(text) == "" {
		t.Fatal("empty completion")
	}
	if m.Stories && !strings.HasPrefix(strings.TrimSpace(text), enginetest.StoriesPrefix) {
		t.Errorf("greedy completion = %q, want it to start %q", text, enginetest.StoriesPrefix)
	}
	if again := enginetest.Complete(t, base, 24); again != text {
		t.Errorf("greedy decoding is not deterministic: %q then %q", text, again)
	}
}

// A model split over two RPC workers must produce the same greedy tokens as
// one process.
func TestSplitMatchesSingleProcess(t *testing.T) {
	models := []enginetest.Model{enginetest.GeneratedModel(t)}
	if m := enginetest.TestModel(t); m.Stories {
		models = append(models, m)
	}
	for _, m := range models {
		t.Run(m.Alias, func(t *testing.T) { testSplit(t, m) })
	}
}

func testSplit(t *testing.T, m enginetest.Model) {
	rt := enginetest.Runtime(t)
	single := enginetest.Complete(t, enginetest.Server(t, rt, engine.ServerSpec{Model: m.Path}), 48)

	a := enginetest.Worker(t, rt, engine.WorkerSpec{})
	b := enginetest.Worker(t, rt, engine.WorkerSpec{})
	split := enginetest.Server(t, rt, engine.ServerSpec{
		Model: m.Path, RPC: []string{a, b}, GPULayers: -1, TensorSplit: []float64{1, 1},
	})
	if got := enginetest.Complete(t, split, 48); got != single {
		t.Errorf("split output differs:\nsplit  %q\nsingle %q", got, single)
	}
}
