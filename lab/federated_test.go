package lab_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/lab"
)

// phase is a stretch of a scenario; a request belongs to the phase it
// started in.
type phase struct {
	name string
	at   time.Time
}

// phaseOf names the phase that was running at t.
func phaseOf(phases []phase, t time.Time) string {
	name := phases[0].name
	for _, p := range phases {
		if !t.Before(p.at) {
			name = p.name
		}
	}
	return name
}

// Three machines serve the model as federated servers and a fourth routes a
// steady load of streamed chats to them, while one server is killed, another
// is put to sleep and woken, and the third is cut off and plugged back in.
// No request may hang, none may fail before its first token, and the woken
// and replugged machines come back without a restart.
func TestLabFederatedChaos(t *testing.T) {
	enginetest.Runtime(t)
	m := enginetest.TestModel(t)
	const client = 3
	nw := lab.New(t, 4, lab.Options{Args: func(i int) []string {
		if i == client {
			return []string{"--name", "client"}
		}
		// Four request slots of 512 tokens each.
		return []string{"--model", m.Path, "--share", "server", "--ctx-size", "2048"}
	}})
	c := nw.Nodes[client]
	servers := nw.Nodes[:client]
	ids := make([]string, len(servers))
	for i, s := range servers {
		ids[i] = s.PeerID()
	}
	routes := func(i int) bool {
		nodes, err := c.ModelNodes()
		return err == nil && slices.ContainsFunc(nodes[m.Alias], func(s string) bool { return strings.HasSuffix(s, "/"+ids[i]) })
	}
	// back says whether server i is routed to again and itself sees the
	// others that are up.
	back := func(i, others int) func() bool {
		return func() bool {
			st, err := servers[i].Status()
			return routes(i) && err == nil && st.PeersOnline >= others
		}
	}
	nw.Wait("the client routing to all three servers", 60*time.Second, func() bool {
		return routes(0) && routes(1) && routes(2)
	})
	pids := []int{servers[1].PID(), servers[2].PID()}

	const limit = 45 * time.Second
	load := c.StartLoad(m.Alias, 4, 200, limit)
	phases := []phase{{"steady", time.Now()}}
	time.Sleep(3 * time.Second)

	phases = append(phases, phase{"kill", time.Now()})
	servers[0].Kill()
	nw.Wait("the client dropping the killed server", 10*time.Second, func() bool { return !routes(0) })
	time.Sleep(3 * time.Second)

	phases = append(phases, phase{"pause", time.Now()})
	servers[1].Pause()
	nw.Wait("the client dropping the sleeping server", 10*time.Second, func() bool { return !routes(1) })
	time.Sleep(2 * time.Second)
	servers[1].Resume()
	woke := nw.Wait("the woken server back", 30*time.Second, back(1, 2))
	time.Sleep(2 * time.Second)

	phases = append(phases, phase{"partition", time.Now()})
	servers[2].Cut()
	nw.Wait("the client dropping the unplugged server", 10*time.Second, func() bool { return !routes(2) })
	time.Sleep(2 * time.Second)
	servers[2].Heal()
	healed := nw.Wait("the replugged server back", 60*time.Second, back(2, 2))
	phases = append(phases, phase{"healed", time.Now()})
	time.Sleep(3 * time.Second)
	results := load.Stop()

	for i, pid := range pids {
		if got := servers[i+1].PID(); got != pid {
			t.Errorf("%s restarted (pid %d, was %d)", servers[i+1].Name, got, pid)
		}
	}
	type tally struct {
		n       [4]int
		slowest time.Duration
	}
	byPhase := map[string]*tally{}
	var total tally
	served := map[string]int{}
	for _, r := range results {
		p := phaseOf(phases, r.Start)
		if byPhase[p] == nil {
			byPhase[p] = &tally{}
		}
		o := r.Outcome(limit)
		byPhase[p].n[o]++
		total.n[o]++
		switch o {
		case nodetest.Completed:
			byPhase[p].slowest = max(byPhase[p].slowest, r.Elapsed)
			total.slowest = max(total.slowest, r.Elapsed)
			served[p+"/"+strings.SplitN(r.Node, "/", 2)[0]]++
		case nodetest.FailedBefore, nodetest.Hung:
			t.Errorf("%s request %s: %v after %s, status %d, %d chunks", p, o, r.Err, r.Elapsed.Round(time.Millisecond), r.Status, r.Chunks)
		}
	}
	for _, p := range phases {
		b := byPhase[p.name]
		if b == nil {
			b = &tally{}
		}
		t.Logf("LAB federated phase=%s: completed=%d failed_after_stream=%d failed_before_stream=%d hung=%d slowest_completed=%s",
			p.name, b.n[nodetest.Completed], b.n[nodetest.FailedAfterStream], b.n[nodetest.FailedBefore], b.n[nodetest.Hung], b.slowest.Round(time.Millisecond))
		if b.n[nodetest.Completed] == 0 {
			t.Errorf("no request that started in phase %s completed", p.name)
		}
	}
	t.Logf("LAB federated: requests=%d completed=%d failed_after_stream=%d failed_before_stream=%d hung=%d slowest_completed=%s",
		len(results), total.n[nodetest.Completed], total.n[nodetest.FailedAfterStream], total.n[nodetest.FailedBefore], total.n[nodetest.Hung], total.slowest.Round(time.Millisecond))
	t.Logf("LAB federated: woken_back_after=%s replugged_back_after=%s restarts=0", woke.Round(time.Millisecond), healed.Round(time.Millisecond))
	t.Logf("LAB federated: completed by phase/server: %v", served)
	if served["healed/"+servers[2].Name] == 0 {
		t.Errorf("the replugged server served nothing after it came back: %v", served)
	}
	if mt, err := c.Metrics(); err == nil {
		t.Logf("LAB federated: client metrics potluck_requests_total: 200=%.0f broken=%.0f backend_error=%.0f",
			lab.SumMetric(mt, "potluck_requests_total", `status="200"`),
			lab.SumMetric(mt, "potluck_requests_total", `status="broken"`),
			lab.SumMetric(mt, "potluck_requests_total", `status="error"`))
	} else {
		t.Errorf("client /metrics: %v", err)
	}
}
