package engine

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

const (
	mib = uint64(1) << 20
	gib = uint64(1) << 30
)

// uniformModel is a model whose layers are all alike.
func uniformModel(layers int, layerWeights, kv, output, compute uint64) ModelEstimate {
	m := ModelEstimate{
		Name:            "test-model",
		Arch:            "llama",
		Layers:          layers,
		OutputBytes:     output,
		KVBytesPerLayer: kv,
		CtxSize:         4096,
		ComputeBytes:    compute,
	}
	for range layers {
		m.LayerBytes = append(m.LayerBytes, layerWeights)
	}
	m.WeightBytes = output + uint64(layers)*layerWeights
	m.TotalBytes = m.WeightBytes + uint64(layers)*kv + compute
	return m
}

// bigModel needs 1 GiB a layer (768 MiB of weights, 256 MiB of cache) over
// 40 layers, 1 GiB outside them and 512 MiB of compute buffer per node:
// 41.5 GiB on one node.
var bigModel = uniformModel(40, 768*mib, 256*mib, gib, 512*mib)

func head(offer uint64) Candidate {
	return Candidate{ID: "head", Name: "desk", Offer: offer, RPCProtocol: "8.0.0", Local: true}
}

func worker(id string, offer uint64) Candidate {
	return Candidate{ID: id, Name: "node-" + id, Offer: offer, RPCProtocol: "8.0.0"}
}

func speaking(c Candidate, proto string) Candidate {
	c.RPCProtocol = proto
	return c
}

func TestMakePlan(t *testing.T) {
	for _, tc := range []struct {
		name       string
		in         PlanInput
		wantNodes  []string // "id:layers", the head first
		wantFits   bool
		wantReason []string          // substrings of Reason
		wantOut    map[string]string // excluded ID -> substring of its reason
	}{
		{
			name:       "fits on head alone",
			in:         PlanInput{Model: bigModel, Head: head(64 * gib), Workers: []Candidate{worker("a", 32*gib)}},
			wantNodes:  []string{"head:40"},
			wantFits:   true,
			wantReason: []string{"this node alone"},
			wantOut:    map[string]string{"a": "not needed"},
		},
		{
			// head 14.5 GiB and b 31.5 GiB free for layers: 12.6 and 27.4 of 40.
			name: "needs one worker",
			in: PlanInput{Model: bigModel, Head: head(16 * gib), Workers: []Candidate{
				worker("a", 8*gib), worker("b", 32*gib), worker("c", 4*gib)}},
			wantNodes:  []string{"head:13", "b:27"},
			wantFits:   true,
			wantReason: []string{"2 nodes"},
			wantOut:    map[string]string{"a": "not needed", "c": "not needed"},
		},
		{
			// 14.5, 15.5 and 11.5 GiB free: 13.98, 14.94 and 11.08 layers.
			name: "needs two workers",
			in: PlanInput{Model: bigModel, Head: head(16 * gib), Workers: []Candidate{
				worker("c", 8*gib), worker("b", 12*gib), worker("a", 16*gib)}},
			wantNodes: []string{"head:14", "a:15", "b:11"},
			wantFits:  true,
			wantOut:   map[string]string{"c": "not needed"},
		},
		{
			// 6.5, 12.5, 11.5 and 11.5 GiB free: 6.19, 11.90, 10.95 and
			// 10.95 layers; the head has no room for a seventh.
			name: "needs three workers, equal offers by ID",
			in: PlanInput{Model: bigModel, Head: head(8 * gib), Workers: []Candidate{
				worker("d", 2*gib), worker("b", 12*gib), worker("a", 12*gib), worker("c", 13*gib)}},
			wantNodes:  []string{"head:6", "c:12", "a:11", "b:11"},
			wantFits:   true,
			wantReason: []string{"4 nodes"},
			wantOut:    map[string]string{"d": "not needed"},
		},
		{
			// 6.5, 11.5 and 9.5 GiB free: 9.45, 16.73 and 13.82 layers.
			name: "does not fit",
			in: PlanInput{Model: bigModel, Head: head(8 * gib), Workers: []Candidate{
				worker("a", 12*gib), worker("b", 10*gib), speaking(worker("x", 100*gib), "7.0.0")}},
			wantNodes:  []string{"head:9", "a:17", "b:14"},
			wantReason: []string{"needs 42.5 GiB, pool offers 30.0 GiB (3 nodes)"},
			wantOut:    map[string]string{"x": "speaks llama.cpp RPC 7.0.0, this node 8.0.0"},
		},
		{
			// 42 GiB fits in 43 GiB offered, but the head cannot hold the
			// output and compute buffer.
			name: "sum fits but head cannot hold its part",
			in: PlanInput{Model: bigModel, Head: head(gib), Workers: []Candidate{
				worker("a", 42*gib)}},
			wantNodes:  []string{"head:0", "a:40"},
			wantReason: []string{"needs 42.0 GiB, pool offers 43.0 GiB (2 nodes)", "this node would need 1.5 GiB of the 1.0 GiB"},
		},
		{
			name: "protocol mismatch, no protocol, zero offer, duplicate, self",
			in: PlanInput{Model: bigModel, Head: head(64 * gib), Mode: SplitAll, Workers: []Candidate{
				speaking(worker("old", 64*gib), "7.0.0"),
				speaking(worker("none", 64*gib), ""),
				worker("zero", 0),
				worker("a", 64*gib), worker("a", 64*gib),
				worker("head", 64*gib),
			}},
			wantNodes: []string{"head:20", "a:20"},
			wantFits:  true,
			wantOut: map[string]string{
				"old":  "speaks llama.cpp RPC 7.0.0, this node 8.0.0",
				"none": "reports no llama.cpp RPC protocol",
				"zero": "offers no memory",
				"a":    "more than once",
				"head": "is this node",
			},
		},
		{
			name:      "head knows no protocol",
			in:        PlanInput{Model: bigModel, Head: head(8 * gib), Workers: []Candidate{worker("a", 64*gib)}, Protocol: "-"},
			wantNodes: []string{"head:40"},
			wantOut:   map[string]string{"a": "speaks llama.cpp RPC 8.0.0, this node does not know its own"},
		},
		{
			// 24 layers of 64 MiB, offers 8:16:8:4 GiB less fixed costs:
			// 5.26, 10.74, 5.35 and 2.65 layers.
			name: "all spreads by offer",
			in: PlanInput{Model: uniformModel(24, 48*mib, 16*mib, 128*mib, 64*mib), Head: head(8 * gib), Mode: SplitAll,
				Workers: []Candidate{worker("c", 4*gib), worker("b", 8*gib), worker("a", 16*gib), speaking(worker("d", 64*gib), "9.0.0")}},
			wantNodes: []string{"head:5", "a:11", "b:5", "c:3"},
			wantFits:  true,
			wantOut:   map[string]string{"d": "RPC 9.0.0"},
		},
		{
			name: "all with equal offers",
			in: PlanInput{Model: uniformModel(24, 48*mib, 16*mib, 128*mib, 64*mib), Head: head(4 * gib), Mode: SplitAll,
				Workers: []Candidate{worker("b", 4*gib), worker("a", 4*gib)}},
			wantNodes: []string{"head:8", "a:8", "b:8"},
			wantFits:  true,
		},
		{
			name: "all gives the smallest worker one layer",
			in: PlanInput{Model: uniformModel(6, gib, 0, gib/2, 0), Head: head(64 * gib), Mode: SplitAll,
				Workers: []Candidate{worker("a", 64*gib), worker("b", gib)}},
			wantNodes: []string{"head:2", "a:3", "b:1"},
			wantFits:  true,
		},
		{
			name: "two layers over three workers, all",
			in: PlanInput{Model: uniformModel(2, gib, 0, gib/2, 0), Head: head(gib), Mode: SplitAll,
				Workers: []Candidate{worker("a", 8*gib), worker("b", 4*gib), worker("c", 2*gib)}},
			wantNodes: []string{"head:0", "a:1", "b:1"},
			wantFits:  true,
			wantOut:   map[string]string{"c": "2 layers all went to larger offers"},
		},
		{
			// One worker would need both layers, 2 GiB of its 1.25.
			name: "two layers over three workers, fit",
			in: PlanInput{Model: uniformModel(2, gib, 0, gib/2, 0), Head: head(gib / 2),
				Workers: []Candidate{worker("a", 5*gib/4), worker("b", 5*gib/4), worker("c", 5*gib/4)}},
			wantNodes: []string{"head:0", "a:1", "b:1"},
			wantFits:  true,
			wantOut:   map[string]string{"c": "not needed"},
		},
		{
			name:       "no layers at all",
			in:         PlanInput{Model: uniformModel(0, 0, 0, gib, 0), Head: head(8 * gib), Mode: SplitAll, Workers: []Candidate{worker("a", 8*gib)}},
			wantNodes:  []string{"head:0"},
			wantFits:   true,
			wantReason: []string{"alone"},
			wantOut:    map[string]string{"a": "not needed"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			switch in.Protocol {
			case "":
				in.Protocol = "8.0.0"
			case "-":
				in.Protocol = ""
			}
			p := MakePlan(in)
			checkPlan(t, in, p)

			var got []string
			for _, n := range p.Nodes {
				got = append(got, fmt.Sprintf("%s:%d", n.ID, n.Layers))
			}
			if !slices.Equal(got, tc.wantNodes) {
				t.Errorf("nodes = %v, want %v", got, tc.wantNodes)
			}
			if p.Fits != tc.wantFits {
				t.Errorf("fits = %v, want %v (%s)", p.Fits, tc.wantFits, p.Reason)
			}
			for _, s := range tc.wantReason {
				if !strings.Contains(p.Reason, s) {
					t.Errorf("reason %q does not say %q", p.Reason, s)
				}
			}
			gotOut := map[string]string{}
			for _, e := range p.Excluded {
				gotOut[e.ID] = e.Reason
			}
			for id, want := range tc.wantOut {
				if !strings.Contains(gotOut[id], want) {
					t.Errorf("excluded %s: reason %q, want it to say %q", id, gotOut[id], want)
				}
			}
			if len(gotOut) != len(tc.wantOut) {
				t.Errorf("excluded %v, want exactly %v", gotOut, tc.wantOut)
			}
			if t.Failed() {
				t.Logf("plan:\n%s", p)
			}
		})
	}
}

// checkPlan verifies what must hold of every plan.
func checkPlan(t *testing.T, in PlanInput, p Plan) {
	t.Helper()
	m := in.Model
	if len(p.Nodes) == 0 || p.Nodes[0].ID != in.Head.ID || !p.Nodes[0].Local {
		t.Fatalf("the head is not the first node: %+v", p.Nodes)
	}
	layers, next := 0, 0
	var need, offered uint64
	for i, n := range p.Nodes {
		if i > 0 && (n.Local || n.Layers < 1) {
			t.Errorf("worker %s: local %v, %d layers", n.ID, n.Local, n.Layers)
		}
		want := m.ComputeBytes
		if i == 0 {
			want += m.OutputBytes
		}
		for range n.Layers {
			want += m.LayerBytes[next] + m.KVBytesPerLayer
			next++
		}
		if n.Bytes != want {
			t.Errorf("node %s: %d bytes, want %d", n.ID, n.Bytes, want)
		}
		if p.Fits && n.Bytes > n.Offer {
			t.Errorf("plan fits, but node %s needs %d of its %d", n.ID, n.Bytes, n.Offer)
		}
		layers += n.Layers
		need += n.Bytes
		offered += n.Offer
	}
	if layers != m.Layers {
		t.Errorf("layers add up to %d, want %d", layers, m.Layers)
	}
	if p.Need != need || p.Offered != offered {
		t.Errorf("need %d offered %d, nodes add up to %d and %d", p.Need, p.Offered, need, offered)
	}

	if p.Fits {
		if want := m.Layers - p.Nodes[0].Layers; p.GPULayers != want {
			t.Errorf("GPULayers = %d, want %d", p.GPULayers, want)
		}
		var ids []string
		var split []float64
		for _, n := range p.Nodes[1:] {
			ids = append(ids, n.ID)
			split = append(split, float64(n.Layers))
		}
		if !slices.Equal(p.Workers, ids) || !slices.Equal(p.TensorSplit, split) {
			t.Errorf("workers %v split %v, want %v %v", p.Workers, p.TensorSplit, ids, split)
		}
	} else if p.Workers != nil || p.TensorSplit != nil || p.GPULayers != 0 {
		t.Errorf("a plan that does not fit has launch settings: %v %v %d", p.Workers, p.TensorSplit, p.GPULayers)
	}

	// Every worker given is placed or excluded, once.
	seen := map[string]int{}
	for _, n := range p.Nodes[1:] {
		seen[n.ID]++
	}
	for _, e := range p.Excluded {
		seen[e.ID]++
	}
	given := map[string]int{}
	for _, w := range in.Workers {
		given[w.ID]++
	}
	for id, n := range given {
		if seen[id] != n {
			t.Errorf("worker %s given %d times, placed or excluded %d", id, n, seen[id])
		}
	}
	if !slices.IsSortedFunc(p.Excluded, func(a, b Exclusion) int { return strings.Compare(a.ID, b.ID) }) {
		t.Errorf("exclusions not sorted by ID: %+v", p.Excluded)
	}
}

// The plan does not depend on the order workers are listed in.
func TestMakePlanDeterministic(t *testing.T) {
	ws := []Candidate{worker("a", 12*gib), worker("b", 12*gib), worker("c", 13*gib), worker("d", 2*gib), worker("e", 12*gib)}
	want := MakePlan(PlanInput{Model: bigModel, Head: head(8 * gib), Workers: ws, Protocol: "8.0.0"}).String()
	for range 20 {
		shuffled := slices.Clone(ws)
		slices.Reverse(shuffled)
		shuffled[0], shuffled[2] = shuffled[2], shuffled[0]
		if got := MakePlan(PlanInput{Model: bigModel, Head: head(8 * gib), Workers: shuffled, Protocol: "8.0.0"}).String(); got != want {
			t.Fatalf("plan changed with worker order:\n%s\nwant\n%s", got, want)
		}
		ws = append(ws[1:], ws[0])
	}
}

func TestPlanShareLayersSums(t *testing.T) {
	for layers := range 12 {
		for n := 1; n <= 6; n++ {
			weights := make([]uint64, n)
			for i := range weights {
				weights[i] = uint64(i*i+1) * gib
			}
			shares := shareLayers(layers, weights, gib)
			sum := 0
			for i, s := range shares {
				sum += s
				if i > 0 && layers >= n-1 && s < 1 {
					t.Errorf("%d layers over %v: index %d gets none", layers, shares, i)
				}
			}
			if sum != layers {
				t.Errorf("%d layers over %d nodes: shares %v add up to %d", layers, n, shares, sum)
			}
		}
	}
	if got := shareLayers(3, []uint64{0, 0, 0}, gib); !slices.Equal(got, []int{1, 1, 1}) {
		t.Errorf("zero weights: %v, want equal shares", got)
	}
}

func TestPlanString(t *testing.T) {
	p := MakePlan(PlanInput{
		Model: bigModel, Head: head(16 * gib), Protocol: "8.0.0",
		Workers: []Candidate{worker("b", 32*gib), speaking(worker("x", 32*gib), "7.0.0")},
	})
	s := p.String()
	for _, want := range []string{
		"model test-model (split fit): fits on 2 nodes",
		"needs 42.0 GiB of 48.0 GiB offered",
		"desk (head) [this node]", "node-b (b)", "27.5 GiB", "32.0 GiB",
		"excluded node-x (x): speaks llama.cpp RPC 7.0.0, this node 8.0.0",
		"llama-server: 1 worker over RPC, --n-gpu-layers 27, --tensor-split 27",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	no := MakePlan(PlanInput{Model: bigModel, Head: head(gib), Protocol: "8.0.0"}).String()
	if !strings.Contains(no, "does not fit: needs 41.5 GiB, pool offers 1.0 GiB (1 node)") || strings.Contains(no, "llama-server:") {
		t.Errorf("summary of a plan that does not fit:\n%s", no)
	}
}

func TestPlanParseSplitMode(t *testing.T) {
	for in, want := range map[string]SplitMode{"": SplitFit, "fit": SplitFit, "ALL": SplitAll, " all ": SplitAll} {
		if got, err := ParseSplitMode(in); err != nil || got != want {
			t.Errorf("ParseSplitMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseSplitMode("most"); err == nil || !strings.Contains(err.Error(), `"most"`) {
		t.Errorf("ParseSplitMode(most) error = %v", err)
	}
}

func TestPlanFormatBytes(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{gib - 1, "1.0 GiB"},
		{412 * gib / 10, "41.2 GiB"},
		{30*gib + gib/2, "30.5 GiB"},
		{1 << 62, "4.0 EiB"},
	} {
		if got := formatBytes(tc.n); got != tc.want {
			t.Errorf("formatBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
