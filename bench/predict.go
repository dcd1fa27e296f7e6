package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/netmesh"
)

// split is a head serving the model with its workers, all `potluck run`
// processes on loopback.
type split struct {
	name  string
	model string // the model it serves, as --model names it
	head  *potluck
	ids   []string // the workers' peer IDs
	plan  engine.Plan
	rtts  []float64 // ms: each worker's round trip in the head's /api/peers when the model was ready
	args  []string  // the head's llama-server arguments
	url   string    // the head's llama-server

	// predicted is the served plan's tokens_per_second read before each
	// measured run, and runRTTs each worker's round trips (ms) then.
	predicted []float64
	runRTTs   [][]float64
	err       error // why sampling failed
}

// startSplit starts a head serving the model and n `--share worker` nodes
// joined to it by --bootstrap, and waits until the model is ready with
// layers on every worker. With n == 0 the head is alone: no token, no mesh.
func (b *bench) startSplit(name string, n int) (*split, error) {
	return b.startSplitOf(name, n, b.model)
}

// startSplitOf is startSplit for model (a path, or a library name that
// more's --models-dir holds), with more of the head's arguments.
func (b *bench) startSplitOf(name string, n int, model string, more ...string) (*split, error) {
	env := []string{"POTLUCK_P2P_HEARTBEAT=1s"}
	s := &split{name: name, model: model}
	args := append([]string{"--model", model}, more...)
	var token string
	if n > 0 {
		t, err := netmesh.NewToken()
		if err != nil {
			return nil, err
		}
		token = t
		args = meshArgs(token, append([]string{"--model", model, "--split", "all"}, more...)...)
	}
	head, err := b.startPotluck(name, env, args...)
	if err != nil {
		return nil, err
	}
	s.head = head
	if n > 0 {
		st, err := head.meshStatus()
		if err != nil {
			return nil, err
		}
		for i := range n {
			w, err := b.startPotluck(fmt.Sprintf("%s-w%d", name, i), env, meshArgs(token, "--share", "worker", "--bootstrap", st.P2PAddrs[0])...)
			if err != nil {
				return nil, err
			}
			ws, err := w.meshStatus()
			if err != nil {
				return nil, err
			}
			s.ids = append(s.ids, ws.PeerID)
		}
	}
	what := "a ready model"
	if n > 0 {
		what = fmt.Sprintf("a ready model split over %d workers", n)
	}
	err = head.waitFor(60*time.Second, 100*time.Millisecond, what, func() bool {
		var doc planDoc
		if getJSON(head.api+"/api/plan", &doc) != nil || !doc.Plan.Fits {
			return false
		}
		for _, id := range s.ids {
			held := false
			for _, a := range doc.Plan.Nodes {
				held = held || (a.ID == id && a.Layers > 0)
			}
			if !held {
				return false
			}
		}
		st, err := head.status()
		if err != nil || st.Model == nil || !st.Model.Ready {
			return false
		}
		s.plan = doc.Plan
		return true
	})
	if err != nil {
		return nil, err
	}
	if s.rtts, err = s.workerRTTs(); err != nil {
		return nil, err
	}
	if _, s.args, err = head.llamaServer(); err != nil {
		return nil, err
	}
	s.url = "http://127.0.0.1:" + argValue(s.args, "--port")
	return s, nil
}

// sample reads the prediction of the plan being served (with its draft,
// if it has one) and the round trips to the workers, before a measured
// run.
func (s *split) sample() error {
	var doc planDoc
	if err := getJSON(s.head.api+"/api/plan", &doc); err != nil {
		return err
	}
	predicted := doc.Plan.TokensPerSecond
	if doc.Plan.Draft != nil {
		predicted = doc.Plan.Draft.TokensPerSecond
	}
	if predicted <= 0 {
		return fmt.Errorf("%s: the plan predicts no decode rate", s.name)
	}
	s.predicted = append(s.predicted, predicted)
	rtts, err := s.workerRTTs()
	if s.runRTTs == nil {
		s.runRTTs = make([][]float64, len(s.ids))
	}
	for i, r := range rtts {
		s.runRTTs[i] = append(s.runRTTs[i], r)
	}
	return err
}

// workerRTTs are the round trips (ms) to s's workers in the head's
// /api/peers; 0 where none was measured yet.
func (s *split) workerRTTs() ([]float64, error) {
	if len(s.ids) == 0 {
		return nil, nil
	}
	ps, err := s.head.peers()
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(s.ids))
	for i, id := range s.ids {
		for _, p := range ps {
			if p.PeerID == id {
				out[i] = p.RTTMS
			}
		}
	}
	return out, nil
}

// predictionTolerance is how far a predicted decode rate may be from the
// measured one: the target of issue "GPUs for real".
const predictionTolerance = 0.25

// predictionFigure compares the decode rate s's plan predicts with the
// rates measured on s's llama-server: the plan's prediction is read before
// each measured run, and the figure is the median of each.
func (b *bench) predictionFigure(sec, setup string, s *split, measured []float64) Figure {
	p, m := median(s.predicted), median(measured)
	f := Figure{Section: sec, Name: "predicted vs measured decode, " + setup, Unit: "tok/s",
		Value: p, Runs: round(s.predicted, 0), Anchor: "measured", AnchorValue: m, AnchorRuns: round(measured, 0),
		Relation: fmt.Sprintf("ratio %.2f", p/m), Target: "within ±25 %",
		Met: met(math.Abs(p-m) <= predictionTolerance*m)}

	var parts []string
	for _, a := range s.plan.Devices {
		where := "head"
		if !a.Local {
			where = a.NodeName
		}
		parts = append(parts, fmt.Sprintf("%s %s %d layers %.0f µs", where, a.Use, a.Layers, a.Seconds*1e6))
	}
	note := fmt.Sprintf("the served plan's tokens_per_second (head's /api/plan) read before each run, against llama.cpp's decode rate on the head's llama-server (%d greedy tokens); measured %s, %.0f µs/token; the plan when the model was ready: %.0f tok/s, %.0f µs/token = %s",
		decodeTokens, spread(measured), 1e6/m, s.plan.TokensPerSecond, 1e6/s.plan.TokensPerSecond, strings.Join(parts, " + "))
	if len(s.ids) > 0 {
		note += fmt.Sprintf(" + network %.0f µs; ping RTT to the workers then %s ms, during the runs %s ms",
			s.plan.NetworkSeconds*1e6, msList(s.rtts), msRange(slices.Concat(s.runRTTs...)))
		var devices float64
		for _, a := range s.plan.Devices {
			devices += a.Seconds
		}
		note += fmt.Sprintf("; measured time per token less the devices' predicted times: %.0f µs per worker (the speed model: rpcSeconds + round trip)",
			(1/m-devices)*1e6/float64(len(s.ids)))
		if s.plan.Draft == nil {
			note += s.withMeasuredRTT(s.model, m)
		}
	}
	f.Note = note
	return f
}

// withMeasuredRTT says what the plan made when the model was ready would
// predict with the round trips the head measured during the runs (the
// median of each worker's) in place of those it counted, and how that
// compares with m (tok/s). The speed model's cost of a worker, a fixed part
// and a number of round trips, is read back from engine.MakePlan.
func (s *split) withMeasuredRTT(model string, m float64) string {
	near, err := workerPlan(model, 0, noDistance)
	if err != nil {
		return ""
	}
	far, err := workerPlan(model, 0, 10*time.Millisecond)
	if err != nil {
		return ""
	}
	fixed, trips := near.NetworkSeconds, (far.NetworkSeconds-near.NetworkSeconds)/0.010
	if trips <= 0 {
		return ""
	}
	counted := (s.plan.NetworkSeconds - float64(len(s.ids))*fixed) / trips // s: the round trips the plan counted, all workers
	var runs float64
	for _, r := range s.runRTTs {
		runs += median(r) / 1e3
	}
	p := 1 / (1/s.plan.TokensPerSecond + trips*(runs-counted))
	out := fmt.Sprintf("; the plan counted %.2f ms of round trips", counted*1e3)
	if counted < 1e-6 {
		out = "; the plan was made before the head had measured a round trip to a worker and counts none"
	}
	return out + fmt.Sprintf("; with the median pings of the runs (%.2f ms in all) it would predict %.0f tok/s (ratio %.2f)", runs*1e3, p, p/m)
}

func msList(xs []float64) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(out, ", ")
}

func msRange(xs []float64) string {
	if len(xs) == 0 {
		return "none"
	}
	return fmt.Sprintf("%.2f-%.2f", slices.Min(xs), slices.Max(xs))
}

// spread shows the range of xs: "min-max".
func spread(xs []float64) string {
	if len(xs) == 0 {
		return "none"
	}
	return fmt.Sprintf("%.0f-%.0f tok/s", slices.Min(xs), slices.Max(xs))
}
