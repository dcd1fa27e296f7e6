package ggufgen

import (
	"fmt"
	"slices"
)

// A model that prefers tokens carries one constant feature: every token's
// embedding has preferFeature in its first dimension, far above the random
// weights, so the first dimension dominates the hidden state after the
// last norm, whatever the input. The output row of each preferred token
// reads that dimension with a weight that falls by preferStep per rank:
// logits that far apart make sampling all but certain to take the most
// preferred token a grammar allows.
const (
	preferFeature = 1.0
	preferStep    = 3.0
)

// preference maps preferred token ids to their output weight; nil for a
// model that prefers nothing.
type preference map[int64]float32

// preferred resolves m.Prefer to token ids.
func (m TinyLlama) preferred() (preference, error) {
	if len(m.Prefer) == 0 {
		return nil, nil
	}
	tokens, _, _ := vocab(m.Vocab, m.Pieces)
	p := preference{}
	for rank, text := range m.Prefer {
		id := slices.Index(tokens, text)
		if id < 0 || (id >= firstByteToken && id < numSpecial) || id == unkID || id == bosID {
			return nil, fmt.Errorf("preferred token %q is not </s>, a piece or a single character of the vocabulary", text)
		}
		if _, dup := p[int64(id)]; dup {
			return nil, fmt.Errorf("preferred token %q is listed twice", text)
		}
		p[int64(id)] = preferStep * float32(len(m.Prefer)-rank)
	}
	return p, nil
}

// weight is element i of tensor name, whose random value is v.
func (p preference) weight(name string, embd int, i int64, v float32) float32 {
	if p == nil || i%int64(embd) != 0 {
		return v
	}
	switch name {
	case "token_embd.weight":
		return preferFeature
	case "output.weight":
		if w, ok := p[i/int64(embd)]; ok {
			return w
		}
	}
	return v
}
