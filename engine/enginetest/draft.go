package enginetest

import (
	"testing"

	"github.com/potluck-gpu/potluck/engine/ggufgen"
)

// Models for speculative decoding, generated once per test binary.
var draftTarget, draftAgree, draftDisagree, draftStranger onceModel

// DraftTarget is a tiny random llama of 8 blocks whose last 6 add nothing
// (ggufgen's InertFrom): it decodes exactly as DraftAgree does, at the
// cost of all 8.
func DraftTarget(t testing.TB) Model {
	m := ggufgen.DefaultTinyLlama()
	m.Layers, m.InertFrom = 8, 2
	return Model{Path: draftTarget.get(t, "draft-target.gguf", m), Alias: "draft-target"}
}

// DraftAgree is DraftTarget's first 2 blocks alone: a draft whose every
// guess holds.
func DraftAgree(t testing.TB) Model {
	m := ggufgen.DefaultTinyLlama()
	m.Layers = 2
	return Model{Path: draftAgree.get(t, "draft-agree.gguf", m), Alias: "draft-agree"}
}

// DraftDisagree has DraftTarget's vocabulary and other weights: a draft
// whose guesses hardly ever hold.
func DraftDisagree(t testing.TB) Model {
	m := ggufgen.DefaultTinyLlama()
	m.Layers, m.Seed = 2, 7
	return Model{Path: draftDisagree.get(t, "draft-disagree.gguf", m), Alias: "draft-disagree"}
}

// DraftStranger is the smallest of them (1 block), of another vocabulary:
// it cannot draft for DraftTarget.
func DraftStranger(t testing.TB) Model {
	m := ggufgen.DefaultTinyLlama()
	m.Layers, m.Vocab = 1, 600
	return Model{Path: draftStranger.get(t, "draft-stranger.gguf", m), Alias: "draft-stranger"}
}
