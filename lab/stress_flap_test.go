package lab_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/bench/fig"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/lab"
)

// Figures of the flapping-link scenario.
var (
	figFlapBack = fig.Figure{Section: "stress", Name: "back after a link flapped", Unit: "s", Target: "p99 <= 10 s",
		Note: "a server's cable unplugged and plugged back in every 5 s for STRESS_FLAP (5m): from the last plug until every member sees every other online"}
	figFlapSeen = fig.Figure{Section: "stress", Name: "seen again while a link flapped", Unit: "%",
		Note: "of the 5 s spells with the cable in, those in which the others listed the flapping member online again"}
	figFlapLost = fig.Figure{Section: "stress", Name: "live members lost while a link flapped", Unit: "members", Target: "0",
		Note: "the two members that stayed plugged in, listed offline by each other at any moment"}
	figFlapHung = fig.Figure{Section: "stress", Name: "requests hung while a server's link flapped", Unit: "requests", Target: "0",
		Note: "streamed chat requests through a client to two servers, one of them flapping, still going after 60 s; the others are answered or fail with an error"}
	figFlapSilent = fig.Figure{Section: "stress", Name: "answers cut short without an error while a link flapped", Unit: "requests", Target: "0",
		Note: "streamed answers that stopped before [DONE] with no error event, which a client would take for a whole answer"}
	figFlapAnswered = fig.Figure{Section: "stress", Name: "requests answered while a server's link flapped", Unit: "%",
		Note: "of the streamed chat requests sent while the link flapped, those that reached [DONE]"}
)

// flapFor is how long the link flaps: STRESS_FLAP, 5 minutes by default
// (0 leaves the scenario out).
func flapFor(t *testing.T) time.Duration {
	d := 5 * time.Minute
	if s := os.Getenv("STRESS_FLAP"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d < 10*time.Second {
			t.Fatalf("STRESS_FLAP=%q: want a duration of 10s or more", s)
		}
	}
	return d
}

// stressFlap is the flapping-link scenario: two servers of a model and a
// client that streams requests through them; one server's cable is
// unplugged and plugged back in every 5 s.
func stressFlap(t *testing.T, ta *tally) {
	enginetest.Runtime(t)
	m := enginetest.TestModel(t)
	nw := lab.New(t, 3, lab.Options{Args: func(i int) []string {
		if i == 0 {
			return nil // the client
		}
		return []string{"--model", m.Path, "--share", "server"}
	}})
	client, steady, flapping := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	ids := []string{steady.PeerID(), flapping.PeerID()}
	nw.Wait("the client routing to both servers", time.Minute, func() bool {
		nodes, err := client.ModelNodes()
		if err != nil {
			return false
		}
		n := 0
		for _, s := range nodes[m.Alias] {
			for _, id := range ids {
				if strings.HasSuffix(s, "/"+id) {
					n++
				}
			}
		}
		return n == 2
	})

	const limit = time.Minute
	load := client.StartLoad(m.Alias, 2, 64, limit)
	watch := watchOnline(client, steady, flapping)
	seen := func() bool {
		p, _ := client.PeerByName(flapping.Name)
		q, _ := steady.PeerByName(flapping.Name)
		return p.Online && q.Online
	}
	cycles := int(flapFor(t) / (10 * time.Second))
	spells, back := 0, 0
	var up time.Time
	for i := range cycles {
		flapping.Cut()
		time.Sleep(5 * time.Second)
		flapping.Heal()
		up = time.Now()
		if i == cycles-1 {
			break // the last plug: it stays in
		}
		spells++
		if waitUpTo(5*time.Second, seen) {
			back++
		}
		time.Sleep(time.Until(up.Add(5 * time.Second)))
	}
	if waitUpTo(time.Minute, meshed(nw.Nodes)) {
		ta.add(figFlapBack, since(up))
	} else {
		ta.miss(t, figFlapBack, fmt.Sprintf("a minute after the last plug, %s", pairsOnline(nw.Nodes)))
		nw.Dump(150)
	}
	results := load.Stop()
	lost := 0
	if w := watch(); w != "" {
		lost++
		t.Errorf("a live member was listed offline: %s", w)
	}
	ta.add(figFlapLost, float64(lost))
	ta.add(figFlapSeen, 100*float64(back)/float64(spells))
	outcomes := map[nodetest.Outcome]int{}
	silent := 0
	for _, r := range results {
		o := r.Outcome(limit)
		outcomes[o]++
		if o == nodetest.FailedAfterStream && r.ErrorEvent == "" {
			silent++
			t.Logf("an answer cut short without an error event: %+v", r.Stream)
		}
	}
	t.Logf("requests while the link flapped: %v; %d cut short without an error event", outcomes, silent)
	ta.add(figFlapSilent, float64(silent))
	ta.add(figFlapHung, float64(outcomes[nodetest.Hung]))
	if len(results) > 0 {
		ta.add(figFlapAnswered, 100*float64(outcomes[nodetest.Completed])/float64(len(results)))
	}
	if outcomes[nodetest.Hung] > 0 {
		t.Errorf("%d requests hung while a server's link flapped", outcomes[nodetest.Hung])
	}
}
