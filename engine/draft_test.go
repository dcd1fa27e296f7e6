package engine_test

import (
	"math"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
)

// A draft changes how fast greedy text comes, never what it is: the
// target decodes the same text alone, with a draft that agrees with it
// (its first blocks alone: nearly every guess accepted) and with one that
// does not (hardly any).
func TestDraftKeepsGreedyText(t *testing.T) {
	rt := enginetest.Runtime(t)
	target := enginetest.DraftTarget(t).Path
	alone, drafted, _ := enginetest.CompleteDrafted(t, enginetest.Server(t, rt, engine.ServerSpec{Model: target, Devices: []string{"none"}}), 64)
	if drafted != 0 || alone == "" {
		t.Fatalf("without a draft: %d drafted, text %q", drafted, alone)
	}
	for _, c := range []struct {
		draft    enginetest.Model
		min, max float64 // share of drafted tokens accepted
	}{
		{enginetest.DraftAgree(t), 0.9, 1},
		{enginetest.DraftDisagree(t), 0, 0.5},
	} {
		spec := engine.ServerSpec{Model: target, Devices: []string{"none"},
			Draft: engine.DraftSpec{Model: c.draft.Path, Devices: []string{"none"}, Max: 8}}
		text, drafted, accepted := enginetest.CompleteDrafted(t, enginetest.Server(t, rt, spec), 64)
		if text != alone {
			t.Errorf("with %s: %q, want %q as without a draft", c.draft.Alias, text, alone)
		}
		share := float64(accepted) / math.Max(float64(drafted), 1)
		t.Logf("%s: %d of %d drafted tokens accepted", c.draft.Alias, accepted, drafted)
		if drafted == 0 || share < c.min || share > c.max {
			t.Errorf("with %s: %d of %d drafted tokens accepted, want a share of %.1f to %.1f", c.draft.Alias, accepted, drafted, c.min, c.max)
		}
	}
}

// Two models share a tokenizer exactly when their vocabularies, merges,
// BOS and EOS are the same: a draft of the same vocabulary does, one of
// another size or other tokens does not, and the difference is named.
func TestTokenizerOf(t *testing.T) {
	target, err := engine.TokenizerOf(enginetest.DraftTarget(t).Path)
	if err != nil {
		t.Fatal(err)
	}
	if target.Vocab != 512 || target.Model != "llama" || target.BOS != 1 || target.EOS != 2 || len(target.Hash) != 64 {
		t.Fatalf("target tokenizer %+v", target)
	}
	same, err := engine.TokenizerOf(enginetest.DraftDisagree(t).Path)
	if err != nil {
		t.Fatal(err)
	}
	if why := target.Differs(same); why != "" {
		t.Errorf("same vocabulary, other weights: %s", why)
	}
	stranger, err := engine.TokenizerOf(enginetest.DraftStranger(t).Path)
	if err != nil {
		t.Fatal(err)
	}
	if why := target.Differs(stranger); !strings.Contains(why, "600 tokens, not 512") {
		t.Errorf("another vocabulary: %q", why)
	}
	// As many tokens, one of them another piece.
	m := ggufgen.DefaultTinyLlama()
	m.Pieces = []string{"<tool>"}
	path := t.TempDir() + "/pieces.gguf"
	if err := ggufgen.WriteFile(path, m); err != nil {
		t.Fatal(err)
	}
	other, err := engine.TokenizerOf(path)
	if err != nil {
		t.Fatal(err)
	}
	if why := target.Differs(other); why != "its vocabulary has other tokens or merges" {
		t.Errorf("other tokens: %q", why)
	}
	if _, err := engine.TokenizerOf(t.TempDir() + "/missing.gguf"); err == nil {
		t.Error("a missing file has a tokenizer")
	}
}

// The speed model: a draft that is always right yields max+1 tokens a
// pass, one never right yields 1; a draft helps a split whose round trips
// dominate and not a single fast machine where it costs as much as the
// model.
func TestDraftedSpeed(t *testing.T) {
	if got := engine.ExpectedTokens(8, 1); got != 9 {
		t.Errorf("always right: %v tokens a pass, want 9", got)
	}
	if got := engine.ExpectedTokens(8, 0); got != 1 {
		t.Errorf("never right: %v tokens a pass, want 1", got)
	}
	if got := engine.ExpectedTokens(3, 0.5); math.Abs(got-1.875) > 1e-9 {
		t.Errorf("half right, 3 drafted: %v tokens a pass, want 1.875", got)
	}
	// 50 ms a token, 40 of them round trips, 10 on GPUs; a draft of
	// 2 ms a token.
	split := engine.Plan{TokensPerSecond: 20, NetworkSeconds: 0.04, Devices: []engine.DeviceAssignment{
		{Backend: "CUDA", Seconds: 0.006}, {Backend: "Vulkan", Description: "NVIDIA GeForce RTX 3060", Seconds: 0.004}}}
	with := engine.DraftedSpeed(split, 0.002, 8, 0.8)
	if with < 2*split.TokensPerSecond {
		t.Errorf("split: %.1f tokens/s with a good draft, want at least twice %.0f", with, split.TokensPerSecond)
	}
	if bad := engine.DraftedSpeed(split, 0.002, 8, 0); bad >= split.TokensPerSecond {
		t.Errorf("split: %.1f tokens/s with a draft never right, want under %.0f", bad, split.TokensPerSecond)
	}
	single := engine.Plan{TokensPerSecond: 100}
	if got := engine.DraftedSpeed(single, 0.005, 3, 0.6); got >= single.TokensPerSecond {
		t.Errorf("one machine, a draft half as costly as the model: %.1f tokens/s, want under %.0f", got, single.TokensPerSecond)
	}
	// The same split on CPUs: each checked token costs about a token's
	// arithmetic again, and the draft gains less.
	cpus := split
	cpus.Devices = []engine.DeviceAssignment{{Backend: "CPU", Seconds: 0.01}}
	if onCPU := engine.DraftedSpeed(cpus, 0.002, 8, 0.8); onCPU >= with {
		t.Errorf("split on CPUs: %.1f tokens/s with the draft, want under the GPUs' %.1f", onCPU, with)
	}
}

// A lookup is predicted as fast as without until measured; measured, its
// speed follows the passes it saved and the guesses it had checked, and
// it breaks even at a share of right guesses that is low for a split
// waiting on round trips and high for a CPU alone.
func TestLookupSpeed(t *testing.T) {
	split := engine.Plan{TokensPerSecond: 20, NetworkSeconds: 0.04, Devices: []engine.DeviceAssignment{
		{Backend: "CUDA", Seconds: 0.006}, {Backend: "CPU", Seconds: 0.004}}}
	dp := engine.PlaceLookup(split, "")
	if dp.Lookup != engine.LookupType || dp.Path != "" || dp.Bytes != 0 || dp.TokensPerSecond != split.TokensPerSecond || dp.Max != engine.LookupTypes[engine.LookupType] {
		t.Errorf("lookup %+v", dp)
	}
	// verify: 0.006×0.1 + 0.004×0.85 = 4 ms a checked token, 50 ms a token.
	if got := engine.BreakEven(split); math.Abs(got-0.08) > 1e-9 {
		t.Errorf("split: breaks even at %.3f, want 0.080", got)
	}
	if got := engine.BreakEven(engine.Plan{TokensPerSecond: 10}); math.Abs(got-0.85) > 1e-9 {
		t.Errorf("a CPU alone: breaks even at %.3f, want 0.850", got)
	}
	// 100 tokens in 80 passes (20 guesses right of 50): 80×50 ms +
	// 50×4 ms = 4.2 s.
	if got := engine.MeasuredSpeed(split, 0, 100, 80, 50); math.Abs(got-100/4.2) > 1e-9 {
		t.Errorf("measured: %.3f tokens/s, want %.3f", got, 100/4.2)
	}
	if got := engine.MeasuredSpeed(split, 0, 100, 100, 0); math.Abs(got-split.TokensPerSecond) > 1e-9 {
		t.Errorf("nothing drafted: %.3f tokens/s, want %.0f as without", got, split.TokensPerSecond)
	}
}
