package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/potluck-gpu/potluck/engine/ggufgen"
)

// draftTarget is a llama whose last 6 of 8 blocks add nothing, so that
// it decodes as its first 2 alone (draftAgree) while a split of it costs
// every block's bytes and round trips: the pair of the lab's
// TestLabBenchDraft.
var draftTarget = ggufgen.TinyLlama{Vocab: 2048, Embd: 512, Layers: 8, Heads: 8, KVHeads: 8, FF: 1408, Context: 512, Seed: 41, InertFrom: 2}

// benchShardDraft splits draftTarget over a head and one worker on
// loopback, without a draft and with the agreeing one, 8 tokens drafted
// at a time, and compares their decode rates and the plans' predictions
// (the 1 Gbit/s, 10 ms lab measures the same in section draft).
func (b *bench) benchShardDraft(ctx context.Context, sec string) {
	fail := func(err error) { b.report.fail(sec, "decode, head + 1 worker, agreeing draft", err) }
	dir, err := os.MkdirTemp(b.tmp, "draft-models-")
	if err != nil {
		fail(err)
		return
	}
	agree := draftTarget
	agree.Layers, agree.InertFrom = 2, 0
	for name, m := range map[string]ggufgen.TinyLlama{"target": draftTarget, "agree": agree} {
		if err := ggufgen.WriteFile(filepath.Join(dir, name+".gguf"), m); err != nil {
			fail(err)
			return
		}
	}
	var splits [2]*split
	for i, draft := range []string{"none", "agree"} {
		if splits[i], err = b.startSplitOf("draft-"+draft, 1, "target", "--models-dir", dir, "--draft", draft, "--draft-max", "8"); err != nil {
			fail(err)
			return
		}
		if _, err := decodeRate(splits[i].url); err != nil { // warm-up
			fail(err)
			return
		}
	}
	rates := [2][]float64{}
	for range b.runs {
		for i, s := range splits {
			if ctx.Err() != nil {
				return
			}
			if s.err == nil {
				s.err = s.sample()
			}
			r, err := decodeRate(s.url)
			if err != nil {
				fail(err)
				return
			}
			rates[i] = append(rates[i], r)
		}
	}
	without, with := median(rates[0]), median(rates[1])
	note := "head `--split all` + 1 `--share worker` process on loopback; a generated llama of 8 blocks whose last 6 add nothing, and a draft of its first 2 (the same greedy text)"
	if d := splits[1].plan.Draft; d != nil {
		note += fmt.Sprintf("; the draft on the head's %s, its trial at load: %.0f %% accepted", d.Device, 100*d.Acceptance)
	} else {
		note += "; the plan has no draft: " + splits[1].plan.NoDraft
	}
	b.report.add(Figure{Section: sec, Name: "decode, head + 1 worker, agreeing draft", Unit: "tok/s", Value: with, Runs: round(rates[1], 0),
		Anchor: "no draft", AnchorValue: without, AnchorRuns: round(rates[0], 0), Relation: fmt.Sprintf("%.2fx", with/without), Note: note})
	for i, setup := range []string{"head + 1 worker, draft target without a draft", "head + 1 worker, agreeing draft"} {
		if s := splits[i]; s.err != nil {
			b.report.fail(sec, "predicted vs measured decode, "+setup, s.err)
		} else {
			b.report.add(b.predictionFigure(sec, setup, s, rates[i]))
		}
	}
}
