package lab_test

import (
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/bench/fig"
	"github.com/potluck-gpu/potluck/lab"
)

// The stress harness (make stress) runs the lab's mesh scenarios again and
// again, each run in a lab of its own, and prints the distribution of every
// figure with the runs that failed. STRESS_RUNS sets how many runs (30 by
// default); CI runs 3 so that the harness itself keeps working.

// stressRuns is the number of runs of each scenario.
func stressRuns(t *testing.T) int { return envCount(t, "STRESS_RUNS", 30, "runs") }

// stressCycles is STRESS_CYCLES: how many cut and heal cycles a LAN run
// makes (4 by default).
func stressCycles(t *testing.T) int { return envCount(t, "STRESS_CYCLES", 4, "cut and heal cycles") }

// envCount reads a count of what from the variable name, def when unset.
func envCount(t *testing.T, name string, def int, what string) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a whole number of %s, 1 or more", name, s, what)
	}
	return n
}

// tally collects the samples of each figure over the runs of a scenario.
type tally struct {
	mu      sync.Mutex
	order   []string
	samples map[string][]float64
	figs    map[string]fig.Figure // unit, target and note of each figure
	runs    int
	failed  []string            // "internet run 3"
	missed  map[string][]string // figure -> why it was not measured in a run
}

func newTally() *tally {
	return &tally{samples: map[string][]float64{}, figs: map[string]fig.Figure{}, missed: map[string][]string{}}
}

// add records one sample of the figure f describes (its Value is ignored).
func (ta *tally) add(f fig.Figure, v float64) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	ta.know(f)
	ta.samples[f.Name] = append(ta.samples[f.Name], v)
}

// know lists figure f in the report, once; ta.mu is held.
func (ta *tally) know(f fig.Figure) {
	if _, ok := ta.figs[f.Name]; !ok {
		ta.order = append(ta.order, f.Name)
		ta.figs[f.Name] = f
	}
}

// slow records a sample of f, and when it is over bound (the figure's
// target) logs the nodes' last lines, to find out why.
func (ta *tally) slow(t *testing.T, nw *lab.Lab, f fig.Figure, v, bound float64) {
	ta.add(f, v)
	if v > bound {
		t.Logf("SLOW %s: %.3g %s (target %s); the nodes' logs:", f.Name, v, f.Unit, f.Target)
		nw.Dump(150)
	}
}

// miss records that a run did not reach what figure f measures within its
// bound: the run goes on, and the report counts it against the figure.
func (ta *tally) miss(t *testing.T, f fig.Figure, why string) {
	t.Logf("MISSED %s: %s", f.Name, why)
	ta.mu.Lock()
	defer ta.mu.Unlock()
	ta.know(f)
	ta.missed[f.Name] = append(ta.missed[f.Name], why)
}

// run runs one scenario n times as subtests, each with a fresh lab, and
// notes the runs that failed.
func (ta *tally) run(t *testing.T, name string, n int, scenario func(t *testing.T, ta *tally)) {
	for i := 1; i <= n; i++ {
		ran := false
		ok := t.Run(fmt.Sprintf("%s/%d", name, i), func(t *testing.T) { ran = true; scenario(t, ta) })
		if !ran {
			continue // not chosen by -run
		}
		ta.mu.Lock()
		ta.runs++
		if !ok {
			ta.failed = append(ta.failed, fmt.Sprintf("%s run %d", name, i))
		}
		ta.mu.Unlock()
	}
}

// percentile is the nearest-rank p-th percentile of sorted xs.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}

// print logs the distribution of every figure and prints each, with its
// runs, for make bench (LABFIG lines). A figure with a target is judged by
// its p99.
func (ta *tally) print(t *testing.T, judge map[string]func(p99 float64) bool) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "STRESS %d runs, %d failed", ta.runs, len(ta.failed))
	if len(ta.failed) > 0 {
		fmt.Fprintf(&b, ": %s", strings.Join(ta.failed, ", "))
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "STRESS %-58s %4s %8s %8s %8s %8s %8s\n", "figure", "n", "min", "p50", "p90", "p99", "max")
	for _, name := range ta.order {
		s := slices.Clone(ta.samples[name])
		sort.Float64s(s)
		f := ta.figs[name]
		misses := ta.missed[name]
		if len(s) == 0 {
			fmt.Fprintf(&b, "STRESS %-58s %4d never measured: %s\n", name, 0, strings.Join(misses, "; "))
			f.Err = "never measured: " + strings.Join(misses, "; ")
			fig.Print(os.Stdout, f)
			continue
		}
		p99 := percentile(s, 99)
		fmt.Fprintf(&b, "STRESS %-58s %4d %8.3f %8.3f %8.3f %8.3f %8.3f %s", name, len(s), s[0], percentile(s, 50), percentile(s, 90), p99, s[len(s)-1], f.Unit)
		if len(misses) > 0 {
			fmt.Fprintf(&b, "  (%d runs never got there)", len(misses))
			f.Note += fmt.Sprintf(" %d runs never got there: %s.", len(misses), misses[0])
		}
		f.Value, f.Runs = p99, s
		if j := judge[name]; j != nil {
			met := j(p99) && len(misses) == 0
			f.Met = &met
			if !met {
				b.WriteString("  MISSED " + f.Target)
			}
		}
		b.WriteString("\n")
		f.Note = strings.TrimSpace(f.Note + fmt.Sprintf(" (p99 of %d samples over %d runs, %d failed; median %.3g)", len(s), ta.runs, len(ta.failed), percentile(s, 50)))
		fig.Print(os.Stdout, f)
	}
	t.Log("\n" + b.String())
	fmt.Print(b.String())
}

// atMost judges a p99 against a bound.
func atMost(bound float64) func(float64) bool { return func(v float64) bool { return v <= bound } }

// since is seconds since t0.
func since(t0 time.Time) float64 { return time.Since(t0).Seconds() }
