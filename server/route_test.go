package server

import "testing"

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
	f.add("a", 1)
	f.add("a", 1)
	f.add("b", 1)
	f.add("a", -1)
	f.mu.Lock()
	cs := f.candidatesLocked([]Backend{{Node: "a"}, {Node: "b"}, {Node: "c"}})
	f.mu.Unlock()
	if cs[0].InFlight != 1 || cs[1].InFlight != 1 || cs[2].InFlight != 0 || f.total() != 2 {
		t.Errorf("candidates = %+v, total %d", cs, f.total())
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
