package speculate

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
)

func library(t *testing.T) (target Model, models []Model) {
	size := func(p string) uint64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return uint64(fi.Size())
	}
	tm := enginetest.DraftTarget(t)
	target = Model{Name: "target", Path: tm.Path, Bytes: size(tm.Path)}
	models = []Model{target}
	for _, m := range []enginetest.Model{enginetest.DraftStranger(t), enginetest.DraftAgree(t), enginetest.DraftDisagree(t)} {
		models = append(models, Model{Name: m.Alias, Path: m.Path, Bytes: size(m.Path)})
	}
	return target, models
}

// auto picks the smallest model of the library that shares the target's
// tokenizer, passing over a smaller one of another vocabulary and the
// target itself; a named draft of another vocabulary is refused, with
// the difference named.
func TestPick(t *testing.T) {
	target, models := library(t)
	// The stranger is the smallest file (1 block, and a vocabulary
	// only a little larger); the two drafts are of one size, and the
	// one first by name wins.
	if models[1].Bytes >= models[2].Bytes {
		t.Fatalf("the stranger (%d bytes) is not smaller than the draft (%d)", models[1].Bytes, models[2].Bytes)
	}
	got, err := Pick(Auto, target, models, engine.TokenizerOf)
	if err != nil || got.Name != "draft-agree" {
		t.Errorf("auto: %+v, %v; want draft-agree", got, err)
	}
	if got, err := Pick("", target, models, engine.TokenizerOf); err != nil || got.Name != "draft-agree" {
		t.Errorf("the default: %+v, %v; want draft-agree", got, err)
	}
	if got, err := Pick(None, target, models, engine.TokenizerOf); err != nil || got.Path != "" {
		t.Errorf("none: %+v, %v", got, err)
	}
	if got, err := Pick("draft-disagree", target, models, engine.TokenizerOf); err != nil || got.Name != "draft-disagree" {
		t.Errorf("named: %+v, %v", got, err)
	}
	_, err = Pick("draft-stranger", target, models, engine.TokenizerOf)
	if err == nil || !strings.Contains(err.Error(), "cannot draft for target: its vocabulary has 600 tokens, not 512") {
		t.Errorf("another vocabulary: %v", err)
	}
	if _, err := Pick("target", target, models, engine.TokenizerOf); err == nil || !strings.Contains(err.Error(), "the model itself") {
		t.Errorf("the target as its own draft: %v", err)
	}
	if _, err := Pick("nowhere", target, models, engine.TokenizerOf); err == nil || !strings.Contains(err.Error(), "not in the library") {
		t.Errorf("a model the library lacks: %v", err)
	}
	// With only the stranger and the target, auto finds nothing.
	if _, err := Pick(Auto, target, models[:2], engine.TokenizerOf); !errors.Is(err, ErrNoDraft) {
		t.Errorf("auto without a match: %v", err)
	}
}

func TestTimings(t *testing.T) {
	body := []byte(`{"choices":[{"text":"x"}],"timings":{"cache_n":0,"draft_n":56,"draft_n_accepted":50,"predicted_ms":15.7,"predicted_n":64,"prompt_n":1}}`)
	d, a, n, ms, ok := Timings(body)
	if !ok || d != 56 || a != 50 || n != 64 || ms != 15.7 {
		t.Errorf("JSON body: %d %d %d %v %v", d, a, n, ms, ok)
	}
	// A stream: the last event's timings count.
	stream := []byte("data: {\"timings\":{\"draft_n\":3,\"draft_n_accepted\":1,\"predicted_ms\":2,\"predicted_n\":4}}\n\n" +
		"data: {\"timings\":{\"draft_n\":9,\"draft_n_accepted\":8,\"predicted_ms\":5.5,\"predicted_n\":12}}\n\ndata: [DONE]\n\n")
	if d, a, n, ms, ok := Timings(stream); !ok || d != 9 || a != 8 || n != 12 || ms != 5.5 {
		t.Errorf("stream: %d %d %d %v %v", d, a, n, ms, ok)
	}
	// A lookup that found nothing to repeat: llama-server leaves the
	// drafts out.
	if d, a, n, ms, ok := Timings([]byte(`{"timings":{"predicted_ms":2,"predicted_n":4}}`)); !ok || d != 0 || a != 0 || n != 4 || ms != 2 {
		t.Errorf("timings without drafts: %d %d %d %v %v, want 0 drafted of 4 tokens in 2 ms", d, a, n, ms, ok)
	}
	if _, _, _, _, ok := Timings([]byte(`{"choices":[{"text":"x"}]}`)); ok {
		t.Error("an answer without timings has timings")
	}
}

func TestTrackerLookup(t *testing.T) {
	idle := Tracker{Min: 256, Lookup: true, BreakEven: 0.3}
	idle.Record(0, 0, 512, 400)
	if why, slower := idle.Slower(2000); slower {
		t.Errorf("a lookup that guessed nothing is switched off: %s", why)
	}
	paying := Tracker{Min: 256, Lookup: true, BreakEven: 0.3}
	paying.Record(100, 35, 256, 400) // gains 1.16 at most, slower than predicted
	if why, slower := paying.Slower(2000); slower {
		t.Errorf("a lookup whose guesses pay is switched off: %s", why)
	}
	bad := Tracker{Min: 256, Lookup: true, BreakEven: 0.3}
	bad.Record(480, 100, 128, 10)
	if why, slower := bad.Slower(2000); slower {
		t.Errorf("judged after 128 of 256 tokens: %s", why)
	}
	bad.Record(480, 100, 128, 10)
	why, slower := bad.Slower(2000)
	if !slower || !strings.Contains(why, "fewer than the 30 % that pay") {
		t.Errorf("a lookup with 21 %% of its guesses right, 30 %% to break even: slower %v, %q", slower, why)
	}
}
