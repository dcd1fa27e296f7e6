package lab_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/bench/fig"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
	"github.com/potluck-gpu/potluck/lab"
)

// draftTarget is a llama of 8 blocks whose last 6 add nothing: it decodes
// as its first 2 alone, while a split of it costs every block's bytes
// and round trips. Narrow enough that a token's arithmetic on one thread
// is small beside a round trip of 20 ms.
var draftTarget = ggufgen.TinyLlama{Vocab: 2048, Embd: 512, Layers: 8, Heads: 8, KVHeads: 8, FF: 1408, Context: 512, Seed: 41, InertFrom: 2}

// draftTokens is how many tokens each measured answer decodes.
const draftTokens = 128

// TestLabBenchDraft measures speculative decoding for `make bench`
// (POTLUCK_LAB_BENCH=1): a head splits draftTarget with a worker 10 ms
// away each way, over a 1 Gbit/s link, and decodes without a draft,
// with a draft that agrees (the target's first 2 blocks alone) and with
// one that does not (another seed), 8 tokens drafted at a time. Each
// figure is llama-server's decoding speed over draftTokens tokens, with the
// plan's prediction beside it. The head tries a draft before it serves
// anyone: the agreeing one is predicted from its trial, and the
// disagreeing one is switched off by it, so its first answer is measured.
func TestLabBenchDraft(t *testing.T) {
	if os.Getenv("POTLUCK_LAB_BENCH") == "" {
		t.Skip("a benchmark: `make bench` runs it (POTLUCK_LAB_BENCH=1)")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	agree, disagree := draftTarget, draftTarget
	agree.Layers, agree.InertFrom = 2, 0
	disagree.Layers, disagree.InertFrom, disagree.Seed = 2, 0, 42
	for name, m := range map[string]ggufgen.TinyLlama{"target": draftTarget, "agree": agree, "disagree": disagree} {
		if err := ggufgen.WriteFile(filepath.Join(dir, name+".gguf"), m); err != nil {
			t.Fatal(err)
		}
	}
	nw, head, worker := farSplit(t, "--split", "all", "--models-dir", dir, "--model", "target", "--draft-max", "8")

	type run struct {
		text                string
		speed, predicted    float64
		drafted, accepted   int
		withDraft, fallback bool
	}
	serve := func(draft string) {
		head.Rerun("--draft", draft)
		workerID := worker.PeerID()
		nw.Wait("the head to serve split with the worker", 3*time.Minute, func() bool { return planUses(head, []string{workerID}, nil) })
		// The plan predicts with the round trip measured: at most
		// replanCheck (15 s) after the worker's first pings.
		nw.Wait("the plan to know the round trip", time.Minute, func() bool {
			d, err := head.Plan()
			return err == nil && d.Plan.NetworkSeconds >= 0.015
		})
	}
	measure := func(label string) run {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		c, err := head.Complete(ctx, draftTokens)
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		d, err := head.Plan()
		if err != nil {
			t.Fatal(err)
		}
		r := run{text: c.Text, speed: c.TokensPerSecond, drafted: c.Drafted, accepted: c.Accepted, predicted: d.Plan.TokensPerSecond}
		if d.Plan.Draft != nil {
			r.withDraft, r.predicted = true, d.Plan.Draft.TokensPerSecond
		}
		t.Logf("%s: %.1f tok/s (predicted %.1f), %d of %d drafted tokens accepted; plan draft %v, no draft %q",
			label, r.speed, r.predicted, r.accepted, r.drafted, d.Plan.Draft != nil, d.Plan.NoDraft)
		return r
	}

	serve("none")
	measure("warm-up")
	none := measure("no draft")
	serve("agree")
	measure("warm-up with the agreeing draft")
	good := measure("agreeing draft")
	serve("disagree")
	// Its trial, before the model serves anyone, shows it slower.
	var off string
	nw.Wait("the head to switch the disagreeing draft off", 2*time.Minute, func() bool {
		d, err := head.Plan()
		off = d.Plan.NoDraft
		return err == nil && d.Plan.Draft == nil && strings.HasPrefix(off, "switched off") && planUses(head, []string{worker.PeerID()}, nil)
	})
	t.Logf("disagreeing draft: %s", off)
	bad := measure("disagreeing draft, first answer")

	for label, r := range map[string]run{"agreeing": good, "disagreeing": bad} {
		if r.text != none.text {
			t.Errorf("%s draft: %q, want %q as without a draft", label, r.text, none.text)
		}
	}
	if !good.withDraft || good.drafted == 0 || bad.withDraft || bad.drafted != 0 {
		t.Errorf("drafts: agreeing %+v, disagreeing %+v", good, bad)
	}
	share := func(r run) float64 {
		if r.drafted == 0 {
			return 0
		}
		return float64(r.accepted) / float64(r.drafted)
	}
	ratio := func(a, b float64) string { return fmt.Sprintf("%.2fx", a/b) }
	const link = "worker at 1 Gbit/s, 10 ms each way; 8 drafted at a time"
	met := func(ok bool) *bool { return &ok }
	report(t, fig.Figure{Section: "draft", Name: "split decoding, agreeing draft", Unit: "tok/s", Value: good.speed,
		Anchor: "no draft", AnchorValue: none.speed, Relation: ratio(good.speed, none.speed), Target: ">= 2x", Met: met(good.speed >= 2*none.speed),
		Note: fmt.Sprintf("%s; %.0f %% of %d drafted tokens accepted", link, 100*share(good), good.drafted)})
	report(t, fig.Figure{Section: "draft", Name: "split decoding, disagreeing draft (first answer)", Unit: "tok/s", Value: bad.speed,
		Anchor: "no draft", AnchorValue: none.speed, Relation: ratio(bad.speed, none.speed), Target: "no slower than without (within 10 %)", Met: met(bad.speed >= 0.9*none.speed),
		Note: fmt.Sprintf("%s; its trial at load: %s", link, off)})
	for _, c := range []struct {
		name string
		r    run
	}{{"no draft", none}, {"agreeing draft", good}, {"disagreeing draft, first answer", bad}} {
		within := c.r.predicted >= 0.75*c.r.speed && c.r.predicted <= 1.25*c.r.speed
		report(t, fig.Figure{Section: "draft", Name: "predicted speed, " + c.name, Unit: "tok/s", Value: c.r.predicted,
			Anchor: "measured", AnchorValue: c.r.speed, Relation: ratio(c.r.predicted, c.r.speed), Target: "within ±25 %", Met: met(within),
			Note: "the plan's prediction (with the draft: at the acceptance assumed or measured by then)"})
	}
}

// farSplit is the lab of the speculation benchmarks: a head started with
// args (held, to be rerun) and a worker whose link is 10 ms long each
// way, the head's link capped at 1 Gbit/s.
func farSplit(t *testing.T, args ...string) (nw *lab.Lab, head, worker *lab.Node) {
	nw = lab.New(t, 2, lab.Options{
		Shaped: []int{1},
		Hold:   []int{0},
		Args: func(i int) []string {
			if i == 0 {
				return append([]string{"--name", "head"}, args...)
			}
			return []string{"--name", "worker", "--share", "worker"}
		},
	})
	head, worker = nw.Nodes[0], nw.Nodes[1]
	// 1 Gbit/s: tc's tbf on the head's link (the worker's is a TAP
	// relay, which tbf garbles), and 10 ms each way on the worker's.
	head.RateLimit(1000)
	worker.Netem(lab.Impairment{Delay: 10 * time.Millisecond})
	return nw, head, worker
}
