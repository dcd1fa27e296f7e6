package lab_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/lab"
)

// reference is the greedy completion of one llama-server holding the whole
// model, on the host's loopback.
func reference(t *testing.T, m enginetest.Model, tokens int) string {
	t.Helper()
	rt := enginetest.Runtime(t)
	return enginetest.Complete(t, enginetest.Server(t, rt, engine.ServerSpec{Model: m.Path}), tokens)
}

// shardLab starts a head splitting the model over every worker and the
// workers, and waits until the plan uses them all and the head serves.
func shardLab(t *testing.T, m enginetest.Model, workers int, opts lab.Options) (*lab.Lab, []string) {
	t.Helper()
	opts.Args = func(i int) []string {
		if i == 0 {
			return []string{"--name", "head", "--model", m.Path, "--split", "all"}
		}
		return []string{"--name", fmt.Sprintf("w%d", i), "--share", "worker"}
	}
	nw := lab.New(t, workers+1, opts)
	ids := make([]string, len(nw.Nodes))
	for i, n := range nw.Nodes {
		ids[i] = n.PeerID()
	}
	nw.Wait("every worker in the plan", 60*time.Second, func() bool {
		return planUses(nw.Nodes[0], ids[1:], nil)
	})
	return nw, ids
}

// planUses says whether head serves under a plan that gives layers to every
// id of in and none to any of out.
func planUses(head *lab.Node, in, out []string) bool {
	st, err := head.Status()
	if err != nil || !st.ModelReady() {
		return false
	}
	d, err := head.Plan()
	if err != nil {
		return false
	}
	for _, id := range in {
		if d.Layers(id) == 0 {
			return false
		}
	}
	for _, id := range out {
		if d.Layers(id) > 0 {
			return false
		}
	}
	return true
}

// recovery tracks probes sent while the head recovers from a fault.
type recovery struct {
	probes, wrong, failed, hung int
	slowest                     time.Duration
	errors                      []string // the first few
}

// await probes the head every 200ms until it answers want under a plan
// with in and without out, and returns how long that took from the fault.
func (r *recovery) await(t *testing.T, nw *lab.Lab, fault time.Time, want string, in, out []string) time.Duration {
	t.Helper()
	head := nw.Nodes[0]
	const limit = 30 * time.Second
	for time.Since(fault) < 90*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		start := time.Now()
		c, err := head.Complete(ctx, 32)
		cancel()
		r.probes++
		r.slowest = max(r.slowest, time.Since(start))
		switch {
		case err != nil && time.Since(start) >= limit:
			r.hung++
			t.Errorf("a request to the head hung for %s: %v", limit, err)
		case err != nil:
			r.failed++
			if len(r.errors) < 3 {
				r.errors = append(r.errors, fmt.Sprintf("%s after the fault, in %s: %v",
					start.Sub(fault).Round(time.Millisecond), time.Since(start).Round(time.Millisecond), err))
			}
		case c.Text != want:
			r.wrong++
			t.Errorf("the head answered %q, want %q", c.Text, want)
		case planUses(head, in, out):
			return time.Since(fault)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no recovery within 90s; plan and logs follow")
	return 0
}

// A head splits the model over three workers. One worker is killed, then
// another is cut off the LAN and plugged back in: each time the head
// re-plans and serves the same text again.
func TestLabShardedChaos(t *testing.T) {
	m := enginetest.TestModel(t)
	want := reference(t, m, 32)
	nw, ids := shardLab(t, m, 3, lab.Options{})
	head := nw.Nodes[0]
	if c, err := head.Complete(context.Background(), 32); err != nil || c.Text != want {
		t.Fatalf("split over the mesh: %q, %v\nsingle process:      %q", c.Text, err, want)
	}
	var r recovery

	fault := time.Now()
	nw.Nodes[1].Kill()
	killed := r.await(t, nw, fault, want, ids[2:], ids[1:2])

	fault = time.Now()
	nw.Nodes[2].Cut()
	cut := r.await(t, nw, fault, want, ids[3:], ids[1:3])

	pid := nw.Nodes[2].PID()
	fault = time.Now()
	nw.Nodes[2].Heal()
	healed := r.await(t, nw, fault, want, []string{ids[2], ids[3]}, ids[1:2])
	if got := nw.Nodes[2].PID(); got != pid {
		t.Errorf("the replugged worker restarted (pid %d, was %d)", got, pid)
	}
	t.Logf("LAB sharded: workers=3 recovery_after_kill=%s recovery_after_cut=%s back_in_plan_after_heal=%s",
		killed.Round(time.Millisecond), cut.Round(time.Millisecond), healed.Round(time.Millisecond))
	t.Logf("LAB sharded: probes=%d failed_while_replanning=%d wrong_text=%d hung=%d slowest_probe=%s",
		r.probes, r.failed, r.wrong, r.hung, r.slowest.Round(time.Millisecond))
	for _, e := range r.errors {
		t.Logf("LAB sharded: a probe failed with: %s", e)
	}
}

// One worker's link has 20 ms of delay and 1% loss each way: the split model
// still decodes exactly what one process does, more slowly.
func TestLabShardedNetem(t *testing.T) {
	m := enginetest.TestModel(t)
	want := reference(t, m, 32)
	nw, ids := shardLab(t, m, 2, lab.Options{Shaped: []int{2}})
	head := nw.Nodes[0]
	speed := func(label string) float64 {
		t.Helper()
		var rates []float64
		for range 3 {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			c, err := head.Complete(ctx, 32)
			cancel()
			if err != nil {
				t.Fatalf("%s: %v", label, err)
			}
			if c.Text != want {
				t.Fatalf("%s: split decode %q\nsingle process:    %q", label, c.Text, want)
			}
			rate := c.TokensPerSecond
			if rate == 0 {
				rate = float64(c.Tokens) / c.Elapsed.Seconds()
			}
			rates = append(rates, rate)
		}
		sort.Float64s(rates)
		return rates[len(rates)/2]
	}
	clean := speed("clean link")
	imp := lab.Impairment{Delay: 20 * time.Millisecond, Loss: 0.01}
	nw.Nodes[2].Netem(imp)
	shaped := speed("shaped link")
	rtt := -1.0
	if ps, err := head.Peers(); err == nil {
		for _, p := range ps {
			if p.ID == ids[2] {
				rtt = p.RTTMS
			}
		}
	}
	nw.Nodes[2].Netem(lab.Impairment{})
	t.Logf("LAB netem: link=%q via=%s tok_s_clean=%.1f tok_s_shaped=%.1f head_rtt_to_shaped_ms=%.1f same_text=true",
		imp, nw.NetemKind(2), clean, shaped, rtt)
}
