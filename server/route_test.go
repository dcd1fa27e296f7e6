package server

import (
	"testing"
	"time"
)

func TestLeastBusy(t *testing.T) {
	cs := func(loads ...int) []Candidate {
		out := make([]Candidate, len(loads))
		for i, l := range loads {
			out[i] = Candidate{Backend: Backend{Node: string(rune('a' + i))}, InFlight: l}
		}
		return out
	}
	tests := []struct {
		name  string
		loads []int
		want  []int // acceptable picks
	}{
		{"single", []int{7}, []int{0}},
		{"least", []int{3, 1, 2}, []int{1}},
		{"zero beats busy", []int{2, 0}, []int{1}},
		{"tie", []int{1, 0, 0, 4}, []int{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := 0; i < 50; i++ {
				got := LeastBusy{}.Select(cs(tt.loads...))
				ok := false
				for _, w := range tt.want {
					ok = ok || got == w
				}
				if !ok {
					t.Fatalf("Select(%v) = %d, want one of %v", tt.loads, got, tt.want)
				}
			}
		})
	}
	// Ties are broken at random: both tied candidates get picked.
	seen := map[int]bool{}
	for i := 0; i < 200; i++ {
		seen[LeastBusy{}.Select(cs(0, 0, 1))] = true
	}
	if !seen[0] || !seen[1] || seen[2] {
		t.Errorf("tie-breaking picked %v, want 0 and 1 only", seen)
	}
}

func TestInflightCounts(t *testing.T) {
	var f inflight
	one := []Backend{{Node: "a"}}
	_, r1 := f.pick(one, LeastBusy{})
	f.pick(one, LeastBusy{})
	f.pick([]Backend{{Node: "b"}}, LeastBusy{})
	r1()
	f.mu.Lock()
	cs := f.candidatesLocked([]Backend{{Node: "a"}, {Node: "b"}, {Node: "c"}})
	f.mu.Unlock()
	if cs[0].InFlight != 1 || cs[1].InFlight != 1 || cs[2].InFlight != 0 || f.total() != 2 {
		t.Errorf("candidates = %+v, total %d", cs, f.total())
	}
}

// What a backend publishes counts every client's requests; this node adds
// only those it sent since.
func TestInflightAddsToPublishedLoad(t *testing.T) {
	var f inflight
	before := time.Now().Add(-time.Second)
	f.pick([]Backend{{Node: "a"}}, LeastBusy{}) // sent after a published at "before"
	after := time.Now().Add(time.Second)
	f.mu.Lock()
	cs := f.candidatesLocked([]Backend{{Node: "a", Load: 5, LoadAt: before}, {Node: "a", Load: 5, LoadAt: after}, {Node: "b", Load: 2, LoadAt: after}})
	f.mu.Unlock()
	if cs[0].InFlight != 6 || cs[1].InFlight != 5 || cs[2].InFlight != 2 {
		t.Errorf("candidates %+v: want 5+1, 5 (the request already counted) and 2", cs)
	}
	// Two client nodes that each see the other's load spread requests.
	b, _ := f.pick([]Backend{{Node: "busy", Load: 9, LoadAt: after}, {Node: "idle", Load: 0, LoadAt: after}}, LeastBusy{})
	if b.Node != "idle" {
		t.Errorf("picked %s, want the backend whose published load is lower", b.Node)
	}
}

func TestInflightPickIsAtomic(t *testing.T) {
	var f inflight
	bs := []Backend{{Node: "a"}, {Node: "b"}}
	var releases []func()
	count := map[string]int{}
	for i := 0; i < 8; i++ {
		b, release := f.pick(bs, LeastBusy{})
		count[b.Node]++
		releases = append(releases, release)
	}
	if count["a"] != 4 || count["b"] != 4 {
		t.Errorf("8 picks with none finished split %v, want 4/4", count)
	}
	for _, r := range releases {
		r()
		r() // idempotent
	}
	if f.total() != 0 {
		t.Errorf("after release: %d in flight", f.total())
	}
}
