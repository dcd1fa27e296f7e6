package lab_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/bench/fig"
	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/lab"
)

// lookupTokens is how many tokens each answer of the lookup benchmark
// decodes: enough for a story's names and phrases to come back.
const lookupTokens = 400

// TestLabBenchLookup evaluates draft-free speculation for `make bench`
// (POTLUCK_LAB_BENCH=1): a head splits the real stories260K with a worker
// 10 ms away each way, over a 1 Gbit/s link, and decodes a story without
// speculation and with each n-gram lookup this llama.cpp offers. Real
// text repeats its names and phrases; the random test models' does not,
// so it needs ../shared.
func TestLabBenchLookup(t *testing.T) {
	if os.Getenv("POTLUCK_LAB_BENCH") == "" {
		t.Skip("a benchmark: `make bench` runs it (POTLUCK_LAB_BENCH=1)")
	}
	stories, ok := enginetest.SharedModel()
	if !ok {
		t.Skip("needs ../shared/models/stories260K.gguf: the generated models' text never repeats")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	b, err := os.ReadFile(stories)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stories.gguf"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	nw, head, worker := farSplit(t, "--split", "all", "--models-dir", dir, "--model", "stories")

	measure := func(draft string) (lab.Completion, engine.Plan) {
		t.Helper()
		head.Rerun("--draft", draft)
		nw.Wait("the head to serve split with the worker", 3*time.Minute, func() bool { return planUses(head, []string{worker.PeerID()}, nil) })
		nw.Wait("the plan to know the round trip", time.Minute, func() bool {
			d, err := head.Plan()
			return err == nil && d.Plan.NetworkSeconds >= 0.015
		})
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if _, err := head.Complete(ctx, 16); err != nil { // warm-up
			t.Fatalf("%s: %v", draft, err)
		}
		c, err := head.Complete(ctx, lookupTokens)
		if err != nil {
			t.Fatalf("%s: %v", draft, err)
		}
		d, err := head.Plan()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("--draft %s: %.1f tok/s, %d of %d drafted tokens accepted; plan: %.1f tok/s without, draft %+v, no draft %q",
			draft, c.TokensPerSecond, c.Accepted, c.Drafted, d.Plan.TokensPerSecond, d.Plan.Draft, d.Plan.NoDraft)
		return c, d.Plan
	}

	none, _ := measure("none")
	const link = "stories260K split with a worker at 1 Gbit/s, 10 ms each way"
	for _, kind := range slices.Sorted(maps.Keys(engine.LookupTypes)) {
		c, plan := measure(kind)
		if c.Text != none.Text {
			t.Errorf("%s: %q, want %q as without", kind, c.Text, none.Text)
		}
		share := 0.0
		if c.Drafted > 0 {
			share = float64(c.Accepted) / float64(c.Drafted)
		}
		note := fmt.Sprintf("%s; %d tokens; %.0f %% of %d drafted tokens accepted", link, lookupTokens, 100*share, c.Drafted)
		if plan.Draft != nil && plan.Draft.Measured {
			note += fmt.Sprintf("; predicted from it %.1f tok/s", plan.Draft.TokensPerSecond)
		} else if plan.Draft == nil {
			note += "; then switched off: " + plan.NoDraft
		}
		if kind == engine.LookupType {
			note += " (the one Potluck uses)"
		}
		report(t, fig.Figure{Section: "draft", Name: "split decoding, n-gram lookup " + kind, Unit: "tok/s", Value: c.TokensPerSecond,
			Anchor: "no speculation", AnchorValue: none.TokensPerSecond, Relation: fmt.Sprintf("%.2fx", c.TokensPerSecond/none.TokensPerSecond), Note: note})
	}
}
