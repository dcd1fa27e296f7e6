package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/speculate"
)

// draftPick is the draft chosen for the host's model, once looked for.
type draftPick struct {
	model speculate.Model
	est   engine.ModelEstimate
	err   error // why there is none
}

// pickDraft chooses the draft for the model once per host, as the user's
// choice says. It reads the library and the candidates' tokenizers
// outside h.mu: that can take a while, and Status must not wait.
func (h *Host) pickDraft() draftPick {
	h.mu.Lock()
	if h.draft != nil {
		p := *h.draft
		h.mu.Unlock()
		return p
	}
	target := speculate.Model{Name: h.alias, Path: h.path, Bytes: h.info.Bytes}
	h.mu.Unlock()

	p := draftPick{}
	p.model, p.err = speculate.Pick(h.cfg.Draft, target, h.node.Models(), engine.TokenizerOf)
	if p.err == nil && p.model.Path != "" {
		p.est, p.err = engine.EstimateModel(p.model.Path, h.cfg.CtxSize)
		if p.err != nil {
			p.err = fmt.Errorf("draft %s: %w", p.model.Name, p.err)
		}
	}
	if p.err != nil && !errors.Is(p.err, speculate.ErrNoDraft) {
		h.log.Warn("no draft model", "model", target.Name, "err", p.err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draft == nil {
		h.draft = &p
	}
	return *h.draft
}

// planDraft adds to plan the draft model decoding runs with, on one of the
// head's devices: the user's choice, or for "auto" the library's smallest
// model of the same tokenizer, when the plan has a worker on another
// machine (a draft saves round trips) or the prediction says it helps
// clearly (minDraftGain).
// It says why in plan.NoDraft where there is none. planWith plans the
// model again over the head's devices as given (for room for the draft).
func (h *Host) planDraft(plan *engine.Plan, head []engine.PlanDevice, planWith func([]engine.PlanDevice) engine.Plan) {
	if h.cfg.Draft == speculate.None || !plan.Fits {
		return
	}
	h.mu.Lock()
	off, tr := h.draftOff, h.tracker
	h.mu.Unlock()
	if off != "" {
		plan.NoDraft = "switched off: " + off
		return
	}
	auto := h.cfg.Draft == "" || h.cfg.Draft == speculate.Auto
	if kind, ok := speculate.Lookup(h.cfg.Draft); ok {
		h.planLookup(plan, tr, kind)
		return
	}
	// No draft model for a split over machines: guesses from the text.
	noModel := func(why string) {
		plan.NoDraft = why
		if auto && len(plan.Workers) > 0 {
			h.planLookup(plan, tr, "")
		}
	}
	p := h.pickDraft()
	if p.err != nil {
		noModel(p.err.Error())
		return
	}
	if p.model.Path == "" {
		return // none chosen
	}
	// The running draft's acceptance, once it has drafted enough to
	// tell, else the assumed one.
	acceptance, measured := engine.AssumedAcceptance, false
	if tr != nil {
		if a, ok := tr.Acceptance(); ok {
			acceptance, measured = a, true
		}
	}
	place := func(plan engine.Plan) (engine.DraftPlan, error) {
		return engine.PlaceDraft(plan, head, p.model.Name, p.model.Path, p.est, h.cfg.DraftMax, acceptance)
	}
	without := plan.TokensPerSecond
	dp, err := place(*plan)
	beat := without // the shrunk plan must beat this, and the draft as placed
	if err == nil {
		beat = max(beat, dp.TokensPerSecond)
	}
	if rp, rdp, ok := roomForDraft(head, p.est.TotalBytes, dp, err, beat, planWith, place); ok {
		*plan, dp, err = rp, rdp, nil
	}
	if err != nil {
		noModel(err.Error())
		return
	}
	if dp.Measured = measured; measured {
		measuredDraft(&dp, tr)
	}
	if auto && len(plan.Workers) == 0 && dp.TokensPerSecond < minDraftGain*without {
		plan.NoDraft = fmt.Sprintf("%s is predicted no faster with the draft %s (%.1f against %.1f tokens/s)",
			plan.Model, p.model.Name, dp.TokensPerSecond, without)
		return
	}
	plan.Draft = &dp
}

// roomForDraft plans the model again with need bytes kept free on the
// head's fastest device that can hold the draft, when the draft is not
// there already (placed is where PlaceDraft put it, or why it could
// not): the model's share there shrinks, and other devices or workers
// take the rest. It returns that plan and its draft when it fits and is
// predicted faster than beat tokens a second. The plan's speed without a
// draft is then that of the shrunk share's layout.
func roomForDraft(head []engine.PlanDevice, need uint64, placed engine.DraftPlan, placeErr error, beat float64,
	planWith func([]engine.PlanDevice) engine.Plan, place func(engine.Plan) (engine.DraftPlan, error)) (engine.Plan, engine.DraftPlan, bool) {
	best := -1
	for i, d := range head {
		if d.Offer >= need && (best < 0 || d.Speed.BytesPerSecond > head[best].Speed.BytesPerSecond) {
			best = i
		}
	}
	if best < 0 || (placeErr == nil && placed.Device == head[best].Name) {
		return engine.Plan{}, engine.DraftPlan{}, false
	}
	shrunk := slices.Clone(head)
	shrunk[best].Offer -= need
	plan := planWith(shrunk)
	if !plan.Fits {
		return engine.Plan{}, engine.DraftPlan{}, false
	}
	dp, err := place(plan)
	if err != nil || dp.Device != head[best].Name || dp.TokensPerSecond <= beat {
		return engine.Plan{}, engine.DraftPlan{}, false
	}
	return plan, dp, true
}

// planLookup adds draft-free speculation of the given kind to plan
// (engine.PlaceLookup), predicted from what the running one measured, if
// it has run long enough to tell.
func (h *Host) planLookup(plan *engine.Plan, tr *speculate.Tracker, kind string) {
	dp := engine.PlaceLookup(*plan, kind)
	if tr != nil && tr.Lookup {
		measuredLookup(*plan, &dp, tr)
	}
	plan.Draft = &dp
}

// measuredLookup predicts dp's speed from what tr measured, once it has
// generated enough tokens to tell.
func measuredLookup(plan engine.Plan, dp *engine.DraftPlan, tr *speculate.Tracker) {
	s := tr.Stats()
	if s.Tokens < lookupMinTokens {
		return
	}
	dp.Acceptance, dp.Measured = s.Acceptance(), true
	dp.TokensPerSecond = engine.MeasuredSpeed(plan, 0, s.Tokens, s.Passes(), s.Drafted)
}

// lookupMinTokens is how many tokens a lookup generates before it is
// judged: it guesses only once an answer repeats its context.
const lookupMinTokens = 256

// newTracker is the measure of plan's draft.
func newTracker(plan engine.Plan) *speculate.Tracker {
	if plan.Draft.Lookup != "" {
		return &speculate.Tracker{Min: lookupMinTokens, Lookup: true, BreakEven: engine.BreakEven(plan)}
	}
	return &speculate.Tracker{}
}

// minDraftGain is the predicted speed-up a draft must bring a model on
// one machine for auto to use it: more than the prediction's error, as a
// draft that turns out slower costs a restart to drop.
const minDraftGain = 1.25

// measureDraft takes what llama-server says of the drafts of one answer
// (the end of it, tail), and switches the draft off when it made decoding
// slower than the plan predicts without it.
func (h *Host) measureDraft(tail []byte) {
	h.mu.Lock()
	tr, plan := h.tracker, h.plan
	h.mu.Unlock()
	if tr == nil || plan.Draft == nil {
		return
	}
	drafted, accepted, tokens, ms, ok := speculate.Timings(tail)
	if !ok {
		return
	}
	tr.Record(drafted, accepted, tokens, ms)
	why, slower := tr.Slower(plan.TokensPerSecond)
	if !slower {
		h.predictMeasured(tr)
		return
	}
	h.mu.Lock()
	if h.tracker != tr {
		h.mu.Unlock()
		return // already switched off
	}
	h.draftOff, h.tracker = why, nil
	h.mu.Unlock()
	h.log.Warn("draft switched off", "model", h.alias, "draft", plan.Draft.Model, "why", why)
	h.node.Warn(nodestate.Warning{Code: "draft-off", Severity: nodestate.SeverityInfo,
		Message: fmt.Sprintf("%s decodes without its draft %s from now on: %s", h.alias, plan.Draft.Model, why)})
	h.Kick()
}

// predictMeasured predicts the plan's speed with its draft again at the
// acceptance measured, once the draft has drafted enough to tell.
func (h *Host) predictMeasured(tr *speculate.Tracker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tracker != tr || h.plan.Draft == nil {
		return
	}
	dp := *h.plan.Draft
	if dp.Lookup != "" {
		measuredLookup(h.plan, &dp, tr)
		h.plan.Draft = &dp
		return
	}
	acceptance, ok := tr.Acceptance()
	if !ok {
		return
	}
	dp.Acceptance, dp.Measured = acceptance, true
	dp.TokensPerSecond = engine.DraftedSpeed(h.plan, dp.SecondsPerToken, dp.Max, dp.Acceptance)
	measuredDraft(&dp, tr)
	h.plan.Draft = &dp
}

// measuredDraft predicts a draft model that has drafted enough to tell
// at the speed it decoded with (its trial and the answers since): the
// speed model's part of a checked token (verifyShare of a device's time
// for one) is a constant, and off by up to half on this project's CPUs,
// while what the draft did on this plan is known.
func measuredDraft(dp *engine.DraftPlan, tr *speculate.Tracker) {
	if s := tr.Stats(); s.TokensPerSecond > 0 {
		dp.TokensPerSecond = s.TokensPerSecond
	}
}

// draftStatus is the draft at work, for Status; call with h.mu held.
func (h *Host) draftStatus() *nodestate.DraftStatus {
	dp := h.plan.Draft
	if dp == nil || h.sup == nil {
		return nil
	}
	ds := &nodestate.DraftStatus{Model: dp.Model, Lookup: dp.Lookup, Device: dp.Device, Max: dp.Max, TokensPerSecond: dp.TokensPerSecond}
	if h.tracker != nil {
		s := h.tracker.Stats()
		ds.Drafted, ds.Acceptance, ds.MeasuredTokensPerSecond = s.Drafted, s.Acceptance(), s.TokensPerSecond
	}
	return ds
}

// The trial of a draft model: before the model serves anyone, the head
// decodes trialTokens greedy tokens with the draft and measures it as it
// measures an answer. A draft that makes decoding slower is then switched
// off (and the model restarted without it) before any answer pays for
// it, and a draft that helps is predicted from what it did, not from
// engine.AssumedAcceptance.
const (
	// trialTokens is enough for speculate.MinTokens drafted tokens even
	// when 3 are drafted at a time and nearly all hold.
	trialTokens = 96
	// trialPrompt begins the trial's text: prose, as most answers are.
	trialPrompt = "Here is a short story about a day at the sea."
	// trialLimit bounds the trial: 96 tokens at 2 tokens a second, with
	// the prompt.
	trialLimit = time.Minute
)

// needsTrial says whether plan runs a draft model not measured yet.
func needsTrial(plan engine.Plan) bool {
	return plan.Draft != nil && plan.Draft.Lookup == "" && !plan.Draft.Measured
}

// tryDraft runs the trial against llama-server at port and returns its
// answer, to be measured as an answer is (measureDraft). A trial that
// fails or runs out of time returns nil and judges nothing: the draft is
// then measured on the answers.
func (h *Host) tryDraft(ctx context.Context, port int) []byte {
	ctx, cancel := context.WithTimeout(ctx, trialLimit)
	defer cancel()
	body, _ := json.Marshal(map[string]any{"prompt": trialPrompt, "n_predict": trialTokens, "temperature": 0,
		"ignore_eos": true, "cache_prompt": false})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/completion", port), bytes.NewReader(body))
	if err != nil {
		return nil
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		defer resp.Body.Close()
		body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
		}
	}
	if err != nil {
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			h.log.Warn("the draft's trial failed; measuring it on the answers", "model", h.alias, "err", err)
		}
		return nil
	}
	return body
}
