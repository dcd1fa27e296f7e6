package host

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/speculate"
)

// draftLibrary is a library of the draft test models, target first.
func draftLibrary(t *testing.T) []speculate.Model {
	var models []speculate.Model
	for _, m := range []enginetest.Model{enginetest.DraftTarget(t), enginetest.DraftAgree(t), enginetest.DraftDisagree(t), enginetest.DraftStranger(t)} {
		fi, err := os.Stat(m.Path)
		if err != nil {
			t.Fatal(err)
		}
		models = append(models, speculate.Model{Name: m.Alias, Path: m.Path, Bytes: uint64(fi.Size())})
	}
	return models
}

// startDraftHost serves the draft target with the draft chosen.
func startDraftHost(t *testing.T, draft string) (*Host, *fakeNode) {
	node := newFakeNode(t)
	node.models = draftLibrary(t)
	target := node.models[0]
	h := New(Config{Name: "head", CtxSize: 256, Threads: 1, Draft: draft}, &fakeMesh{self: "head-id"}, node, target.Name)
	h.SetModel(target.Path, target.Name)
	h.Start(t.Context())
	t.Cleanup(h.Stop)
	awaitReady(t, h, node)
	return h, node
}

func awaitReady(t *testing.T, h *Host, node *fakeNode) {
	t.Helper()
	select {
	case <-node.ready:
	case <-time.After(90 * time.Second):
		t.Fatalf("the model did not get ready: %+v", h.Status())
	}
}

// greedy asks the host's proxy for 64 greedy tokens, and says how many
// tokens llama-server drafted for them.
func greedy(t *testing.T, h *Host) (text string, drafted int) {
	t.Helper()
	text, drafted, _ = enginetest.CompleteDrafted(t, "http://"+h.LocalAddr(), 64)
	return text, drafted
}

// A draft the user names runs beside the model on the head's device: the
// status says which and where, its trial before the model is ready
// measured it, the text is the text without it, and the proxy measures
// how many of its tokens the model accepted.
func TestHostDraftNamed(t *testing.T) {
	plain, _ := startDraftHost(t, speculate.None)
	want, drafted := greedy(t, plain)
	if drafted != 0 || plain.Status().Draft != nil {
		t.Fatalf("draft none: %d drafted, %+v", drafted, plain.Status().Draft)
	}
	plain.Stop()

	h, _ := startDraftHost(t, "draft-agree")
	st := h.Status()
	if st.Draft == nil || st.Draft.Model != "draft-agree" || st.Draft.Device != "CPU" || st.Draft.Max != engine.DefaultDraftMax {
		t.Fatalf("status %+v, draft %+v", st, st.Draft)
	}
	plan, _ := h.CurrentPlan()
	if plan.Draft == nil || plan.Draft.TokensPerSecond <= 0 || plan.TokensPerSecond <= 0 || !plan.Draft.Measured || plan.Draft.Acceptance < 0.9 {
		t.Errorf("plan after the trial: %+v", plan.Draft)
	}
	tried := st.Draft.Drafted
	if tried < speculate.MinTokens || st.Draft.Acceptance < 0.9 || st.Draft.MeasuredTokensPerSecond <= 0 {
		t.Errorf("draft status after the trial: %+v, want %d drafted or more, nearly all accepted", st.Draft, speculate.MinTokens)
	}
	if st.Draft.TokensPerSecond != st.Draft.MeasuredTokensPerSecond {
		t.Errorf("predicted %.1f tokens/s with the draft after its trial, which measured %.1f", st.Draft.TokensPerSecond, st.Draft.MeasuredTokensPerSecond)
	}
	got, drafted := greedy(t, h)
	if got != want || drafted == 0 {
		t.Errorf("with the draft: %q (%d drafted), want %q", got, drafted, want)
	}
	var ds *nodestate.DraftStatus
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ds = h.Status().Draft; ds != nil && ds.Drafted > tried {
			break
		}
	}
	if ds == nil || ds.Drafted != tried+drafted || ds.Acceptance < 0.9 {
		t.Errorf("draft status after an answer: %+v, want %d drafted, nearly all accepted", ds, tried+drafted)
	}
}

// A draft whose guesses hardly ever hold makes decoding slower: its
// trial shows it before the model serves anyone, and the host says so
// and serves without it, with the same text, and does not take it back.
// (The trial is measured as the proxy measures answers: measureDraft.)
func TestHostDraftSwitchesOff(t *testing.T) {
	plain, _ := startDraftHost(t, speculate.None)
	want, _ := greedy(t, plain)
	plain.Stop()

	h, node := startDraftHost(t, "draft-disagree")
	st := h.Status()
	if st.Draft != nil || !strings.HasPrefix(st.NoDraft, "switched off: the model accepted") || !strings.Contains(st.NoDraft, "drafted tokens") {
		t.Fatalf("ready after the trial: draft %+v, no draft %q", st.Draft, st.NoDraft)
	}
	if w := node.warning("draft-off"); !strings.Contains(w, "decodes without its draft draft-disagree") {
		t.Errorf("warning %q", w)
	}
	got, drafted := greedy(t, h)
	if got != want || drafted != 0 {
		t.Errorf("the first answer: %q (%d drafted), want %q without a draft", got, drafted, want)
	}
	if p, _ := h.Plan(); p.Draft != nil {
		t.Errorf("a new plan takes the draft back: %+v", p.Draft)
	}
}

// planningHead is a head (not started: for plans) of the library's
// first model with --split all, and a worker 10 ms away that it does not
// see until the test adds it to the mesh's peers.
func planningHead(t *testing.T, models []speculate.Model) (*Host, *fakeMesh, nodestate.Peer) {
	node := newFakeNode(t)
	node.models = models
	target := node.models[0]
	worker := nodestate.Peer{ID: "w-id", Name: "w", Online: true, Mode: nodestate.ShareWorker, MinRTTMS: 10,
		Services: map[string]netmesh.ServiceInfo{DefaultRPCService: {Version: "3.0.0"}},
		Devices:  []nodestate.DeviceInfo{{Name: "CPU", Backend: "CPU", Offer: 64 << 20, Speed: engine.CPUSpeed(0)}}}
	mesh := &fakeMesh{self: "head-id"}
	h := New(Config{Name: "head", CtxSize: 256, Threads: 1, Split: engine.SplitAll}, mesh, node, target.Name)
	h.SetModel(target.Path, target.Name)
	return h, mesh, worker
}

// auto: the library's smallest model of the same tokenizer, passing over
// one of another vocabulary; on one machine only where it is predicted to
// help, always for a split over machines.
func TestHostDraftAuto(t *testing.T) {
	h, mesh, worker := planningHead(t, draftLibrary(t))
	alone, err := h.Plan()
	if err != nil {
		t.Fatal(err)
	}
	// The draft costs a quarter of the model here: predicted slower.
	if alone.Draft != nil || !strings.Contains(alone.NoDraft, "predicted no faster with the draft draft-agree") {
		t.Errorf("one machine: draft %+v, no draft %q", alone.Draft, alone.NoDraft)
	}
	mesh.peers = []nodestate.Peer{worker}
	split, err := h.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if len(split.Workers) != 1 || split.Draft == nil || split.Draft.Model != "draft-agree" || split.Draft.Device != "CPU" {
		t.Fatalf("a split: workers %v, draft %+v (%s), excluded %+v", split.Workers, split.Draft, split.NoDraft, split.Excluded)
	}
	if split.Draft.TokensPerSecond <= split.TokensPerSecond {
		t.Errorf("a split with 10 ms round trips: %.0f tokens/s predicted with the draft, %.0f without", split.Draft.TokensPerSecond, split.TokensPerSecond)
	}
}

// A draft with no room on the head's devices beside their shares of the
// model gets room on the fastest: its share shrinks, and the worker
// takes the rest, when that is predicted faster.
func TestRoomForDraft(t *testing.T) {
	const gib = uint64(1) << 30
	model := engine.ModelEstimate{Name: "big", Arch: "llama", Layers: 40, OutputBytes: gib, OutputLayerBytes: gib / 2,
		KVBytesPerLayer: gib / 4, CtxSize: 4096, ComputeBytes: gib / 2}
	for range model.Layers {
		model.LayerBytes = append(model.LayerBytes, 3*gib/4)
	}
	model.WeightBytes = model.OutputBytes + 30*gib
	model.TotalBytes = model.WeightBytes + 10*gib + model.ComputeBytes
	draft := engine.ModelEstimate{Name: "small", Layers: 8, WeightBytes: gib, TotalBytes: 3 * gib / 2}

	head := []engine.PlanDevice{
		{Name: "CUDA0", Backend: "CUDA", Description: "a GPU", Offer: 24 * gib, Speed: engine.GPUSpeed(1000e9)},
		{Name: "CPU", Backend: "CPU", Offer: gib, Speed: engine.CPUSpeed(20e9)},
	}
	in := engine.PlanInput{Model: model, Protocol: "3.0.0",
		Head: engine.Candidate{ID: "head", Name: "head", RPCProtocol: "3.0.0", Local: true, Devices: head},
		Workers: []engine.Candidate{{ID: "w", Name: "w", RPCProtocol: "3.0.0", RTT: 10 * time.Millisecond,
			Devices: []engine.PlanDevice{{Name: "CUDA0", Backend: "CUDA", Description: "a GPU", Offer: 24 * gib, Speed: engine.GPUSpeed(1000e9)}}}}}
	planWith := func(devs []engine.PlanDevice) engine.Plan {
		in := in
		in.Head.Devices = devs
		return engine.MakePlan(in)
	}
	place := func(plan engine.Plan) (engine.DraftPlan, error) {
		return engine.PlaceDraft(plan, head, "small", "/small.gguf", draft, 0, engine.AssumedAcceptance)
	}
	plan := planWith(head)
	if !plan.Fits {
		t.Fatalf("the model does not fit: %s", plan.Reason)
	}
	placed, err := place(plan)
	if err == nil {
		t.Fatalf("the draft has room without making any: %+v\n%s", placed, plan.String())
	}
	room, dp, ok := roomForDraft(head, draft.TotalBytes, placed, err, plan.TokensPerSecond, planWith, place)
	if !ok || dp.Device != "CUDA0" {
		t.Fatalf("no room made: %v, draft %+v", ok, dp)
	}
	for _, a := range room.Devices {
		if a.Local && a.Device == "CUDA0" && a.Bytes+dp.Bytes > head[0].Offer {
			t.Errorf("CUDA0 holds %d bytes of the model and %d of the draft: more than its %d", a.Bytes, dp.Bytes, head[0].Offer)
		}
	}
	t.Logf("before:\n%s\nafter:\n%s\ndraft: %.1f tokens/s", plan.String(), room.String(), dp.TokensPerSecond)

	// Where the model is faster without the draft than the shrunk share
	// with it, the share stays.
	if _, _, ok := roomForDraft(head, draft.TotalBytes, placed, err, 10*dp.TokensPerSecond, planWith, place); ok {
		t.Error("room made for a draft predicted slower than the plan without")
	}
}

// Without a draft model in the library, auto guesses from the text so
// far (an n-gram lookup) for a split over machines, and not on one
// machine, where it is predicted no faster.
func TestHostDraftAutoLookup(t *testing.T) {
	lib := draftLibrary(t)
	// The target, and a model of another vocabulary.
	h, mesh, worker := planningHead(t, []speculate.Model{lib[0], lib[3]})
	alone, err := h.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if alone.Draft != nil || !strings.Contains(alone.NoDraft, "shares its tokenizer") {
		t.Errorf("one machine: draft %+v, no draft %q", alone.Draft, alone.NoDraft)
	}
	mesh.peers = []nodestate.Peer{worker}
	split, err := h.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if len(split.Workers) != 1 || split.Draft == nil || split.Draft.Lookup != engine.LookupType || split.Draft.Path != "" {
		t.Fatalf("a split: workers %v, draft %+v (%s)", split.Workers, split.Draft, split.NoDraft)
	}
	if split.Draft.TokensPerSecond != split.TokensPerSecond {
		t.Errorf("an unmeasured lookup is predicted at %.1f tokens/s, want %.1f as without", split.Draft.TokensPerSecond, split.TokensPerSecond)
	}
	if s := split.String(); !strings.Contains(s, "draft-free speculation: n-gram lookup ("+engine.LookupType+")") {
		t.Errorf("plan says:\n%s", s)
	}
}

// --draft ngram runs llama-server's n-gram lookup: the text is the text
// without it, and the proxy measures every answer, those with nothing
// drafted too. (Two answers of 120 tokens: fewer than a lookup runs
// before it is judged.)
func TestHostLookup(t *testing.T) {
	model := enginetest.TestModel(t)
	serve := func(draft string) *Host {
		node := newFakeNode(t)
		node.models = []speculate.Model{{Name: model.Alias, Path: model.Path, Bytes: 1 << 20}}
		h := New(Config{Name: "head", CtxSize: 512, Threads: 1, Draft: draft}, &fakeMesh{self: "head-id"}, node, model.Alias)
		h.SetModel(model.Path, model.Alias)
		h.Start(t.Context())
		t.Cleanup(h.Stop)
		awaitReady(t, h, node)
		return h
	}
	plain := serve(speculate.None)
	want, _, _ := enginetest.CompleteDrafted(t, "http://"+plain.LocalAddr(), 120)
	plain.Stop()

	h := serve(speculate.NGram)
	st := h.Status()
	if st.Draft == nil || st.Draft.Model != engine.LookupName || st.Draft.Max != engine.LookupTypes[engine.LookupType] {
		t.Fatalf("status: draft %+v, no draft %q", st.Draft, st.NoDraft)
	}
	var drafted, accepted int
	for range 2 {
		got, d, a := enginetest.CompleteDrafted(t, "http://"+h.LocalAddr(), 120)
		if got != want {
			t.Fatalf("with the lookup: %q, want %q", got, want)
		}
		drafted, accepted = drafted+d, accepted+a
	}
	st = h.Status()
	if st.Draft == nil || st.Draft.MeasuredTokensPerSecond <= 0 || st.Draft.Drafted != drafted {
		t.Fatalf("after 240 tokens: draft %+v, no draft %q; llama-server drafted %d", st.Draft, st.NoDraft, drafted)
	}
	t.Logf("%s: %d of %d drafted tokens accepted over 240 tokens", model.Alias, accepted, drafted)
}
