package engine

import "math"

// Draft-free speculation: llama-server guesses the next tokens from the
// n-grams of the text so far (the prompt and the answer), with no draft
// model. The guesses cost next to nothing and hold where an answer
// repeats its context: code edited, text quoted, a list continued. Where
// nothing repeats, nothing is drafted, and decoding runs as without.

// LookupType is the llama.cpp speculation Potluck uses without a draft
// model (--spec-type): the one of its n-gram kinds that gained the most
// on a split in `make bench` (section draft).
const LookupType = "ngram-simple"

// LookupName is how plans and status name draft-free speculation in the
// place of a draft model.
const LookupName = "n-gram lookup"

// LookupTypes are the n-gram speculations of this llama.cpp that Potluck
// can run, with the most tokens each drafts at a time (llama.cpp's
// defaults: --spec-ngram-*-size-m, --spec-ngram-mod-n-max).
var LookupTypes = map[string]int{"ngram-simple": 48, "ngram-map-k": 48, "ngram-map-k4v": 48, "ngram-mod": 64}

// PlaceLookup is plan's draft-free speculation of the given type (one of
// LookupTypes; "": LookupType). It runs in llama-server on the head's CPU
// and takes no memory worth counting. Before it has run it is predicted
// no faster than without: how often an answer repeats its context is
// unknown until measured (see MeasuredSpeed).
func PlaceLookup(plan Plan, kind string) DraftPlan {
	if kind == "" {
		kind = LookupType
	}
	return DraftPlan{Model: LookupName, Lookup: kind, Device: "CPU", Max: LookupTypes[kind], TokensPerSecond: plan.TokensPerSecond}
}

// MeasuredSpeed predicts plan's speed with speculation that, measured,
// yielded tokens in passes of the model, with drafted tokens checked in
// them, and whose own guesses cost draftSeconds each (0 for a lookup).
func MeasuredSpeed(plan Plan, draftSeconds float64, tokens, passes, drafted int) float64 {
	if plan.TokensPerSecond <= 0 || tokens <= 0 || passes <= 0 {
		return 0
	}
	spent := float64(passes)/plan.TokensPerSecond + float64(drafted)*(draftSeconds+verifySeconds(plan))
	return float64(tokens) / spent
}

// BreakEven is the share of drafted tokens the model must accept for
// speculation whose guesses cost nothing (a lookup) to pay for checking
// them in plan: each accepted token saves a token's time, and each
// drafted one costs what checking one more token in a pass costs. It is
// low where round trips or a GPU's memory reads dominate a token's time,
// and high on a CPU alone.
func BreakEven(plan Plan) float64 {
	if plan.TokensPerSecond <= 0 {
		return 1
	}
	return math.Min(verifySeconds(plan)*plan.TokensPerSecond, 1)
}
