package engine

import (
	"fmt"
	"math"

	"github.com/potluck-gpu/potluck/internal/size"
)

// Speculative decoding: a small draft model of the same vocabulary, on
// the head, guesses the next few tokens one by one; the served model then
// checks them all in one pass, which costs about what one token costs,
// round trips to workers included. Each pass yields the drafted tokens up
// to the first wrong one, plus the model's own token there.

// DraftPlan is a draft model placed on the head, and what it is predicted
// to bring.
type DraftPlan struct {
	Model string `json:"model"` // as the library names it; LookupName for a lookup
	Path  string `json:"path"`
	// Lookup is llama.cpp's draft-free speculation (LookupType) when no
	// draft model runs: Path is then empty, and Bytes 0.
	Lookup string `json:"lookup,omitempty"`
	// Device is the head's device it runs on: "CUDA0", "Vulkan0" or
	// "CPU" (Spec says "none" to llama-server for the CPU).
	Device string `json:"device"`
	Bytes  uint64 `json:"bytes"` // the head's memory it takes
	Layers int    `json:"layers"`
	Max    int    `json:"max"` // tokens drafted at a time
	// Acceptance is the share of drafted tokens the model accepts that
	// the prediction assumes: measured once the draft has run, else
	// AssumedAcceptance.
	Acceptance float64 `json:"acceptance"`
	Measured   bool    `json:"measured,omitempty"`
	// SecondsPerToken is the draft's own time to guess one token;
	// TokensPerSecond the served model's predicted speed with the draft
	// (Plan.TokensPerSecond is without).
	SecondsPerToken float64 `json:"draft_seconds_per_token"`
	TokensPerSecond float64 `json:"tokens_per_second"`
}

// DefaultDraftMax is llama.cpp's default of tokens drafted at a time
// (--spec-draft-n-max).
const DefaultDraftMax = 3

// AssumedAcceptance is the share of drafted tokens a draft of the same
// vocabulary is taken to get right before it has run: a middle value for
// a small model of the same family on chat text.
const AssumedAcceptance = 0.6

// What checking one more token in a pass costs, as a share of a device's
// time for one token. A pass reads every weight once whatever its tokens,
// and each token adds its arithmetic: next to nothing on a GPU, whose
// decoding waits on memory, but about a whole token on a CPU running a
// thread or two (measured in the lab: 9 tokens checked at once on one
// thread took about 7 times one token's time).
const (
	gpuVerifyShare = 0.1
	cpuVerifyShare = 0.85
)

// verifyShare is what one more token costs device d in a pass.
func verifyShare(d DeviceAssignment) float64 {
	if d.Backend == "CPU" || IsSoftwareDevice(Device{Description: d.Description}) {
		return cpuVerifyShare
	}
	return gpuVerifyShare
}

// PlaceDraft puts the draft est (the file at path, named model) on the
// head's fastest device of those in plan that have room for it beside
// their share, and predicts plan's speed with it, drafting max tokens at
// a time with the given acceptance. It fails when no device of the head
// has room.
func PlaceDraft(plan Plan, head []PlanDevice, model, path string, est ModelEstimate, max int, acceptance float64) (DraftPlan, error) {
	if max <= 0 {
		max = DefaultDraftMax
	}
	need := est.TotalBytes
	best := -1
	for i, d := range head {
		used := uint64(0)
		for _, a := range plan.Devices {
			if a.Local && a.Device == d.Name {
				used += a.Bytes
			}
		}
		if d.Offer < used || d.Offer-used < need {
			continue
		}
		if best < 0 || d.Speed.BytesPerSecond > head[best].Speed.BytesPerSecond {
			best = i
		}
	}
	if best < 0 {
		return DraftPlan{}, fmt.Errorf("no device of this computer has room for the draft %s (%s) beside its share of the model", model, size.Format(need))
	}
	d := head[best]
	dp := DraftPlan{Model: model, Path: path, Device: d.Name, Bytes: need, Layers: est.Layers, Max: max, Acceptance: acceptance}
	sp := d.Speed
	if !sp.Known() {
		sp = CPUSpeed(0)
	}
	dp.SecondsPerToken = sp.BaseSeconds + float64(est.WeightBytes)/sp.BytesPerSecond + float64(est.Layers)*sp.LayerSeconds
	dp.TokensPerSecond = DraftedSpeed(plan, dp.SecondsPerToken, max, acceptance)
	return dp, nil
}

// DraftedSpeed predicts plan's decoding speed with a draft that guesses a
// token in draftSeconds, max at a time, of which the model accepts the
// share acceptance (each guess on its own, as llama.cpp stops at the first
// wrong one).
func DraftedSpeed(plan Plan, draftSeconds float64, max int, acceptance float64) float64 {
	if plan.TokensPerSecond <= 0 {
		return 0
	}
	perToken := 1 / plan.TokensPerSecond
	pass := perToken + float64(max)*(draftSeconds+verifySeconds(plan))
	return ExpectedTokens(max, acceptance) / pass
}

// verifySeconds is what checking one more token in a pass costs plan's
// devices; a plan that names none is taken for the CPU's.
func verifySeconds(plan Plan) float64 {
	verify, seconds := 0.0, 0.0
	for _, d := range plan.Devices {
		verify += d.Seconds * verifyShare(d)
		seconds += d.Seconds
	}
	if seconds == 0 && plan.TokensPerSecond > 0 {
		verify = math.Max(1/plan.TokensPerSecond-plan.NetworkSeconds, 0) * cpuVerifyShare
	}
	return verify
}

// ExpectedTokens is the tokens one pass yields when max tokens are
// drafted and each is right with probability a: the right guesses up to
// the first wrong one, and the model's own token.
func ExpectedTokens(max int, a float64) float64 {
	a = math.Min(math.Max(a, 0), 1)
	if a == 1 {
		return float64(max + 1)
	}
	return (1 - math.Pow(a, float64(max+1))) / (1 - a)
}

// Spec is how llama-server runs the planned draft, drafting at least min
// tokens at a time (0: llama.cpp's default).
func (dp DraftPlan) Spec(min int) DraftSpec {
	s := DraftSpec{Model: dp.Path, Devices: []string{dp.Device}, GPULayers: -1, Max: dp.Max, Min: min}
	if dp.Device == "CPU" {
		s.Devices, s.GPULayers = []string{"none"}, 0
	}
	return s
}
