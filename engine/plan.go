package engine

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// SplitMode says how many nodes a model is spread over.
type SplitMode string

const (
	// SplitFit uses the fewest nodes that hold the model: the head alone
	// when it can, then the largest offers first.
	SplitFit SplitMode = "fit"
	// SplitAll spreads the layers over the head and every eligible worker.
	SplitAll SplitMode = "all"
)

// ParseSplitMode reads a --split value; the empty string is SplitFit.
func ParseSplitMode(s string) (SplitMode, error) {
	switch m := SplitMode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return SplitFit, nil
	case SplitFit, SplitAll:
		return m, nil
	}
	return "", fmt.Errorf("split mode %q: want %q or %q", s, SplitFit, SplitAll)
}

// Candidate is a node that could hold part of a model.
type Candidate struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Offer       uint64 `json:"offer"`        // bytes of memory it lends
	RPCProtocol string `json:"rpc_protocol"` // llama.cpp RPC protocol of its worker, e.g. "8.0.0"
	Local       bool   `json:"local"`        // the head itself
}

// PlanInput is everything MakePlan decides from.
type PlanInput struct {
	Model    ModelEstimate
	Head     Candidate   // this node; it runs llama-server on its CPU
	Workers  []Candidate // the RPC workers in the mesh, in any order
	Protocol string      // the head's llama.cpp RPC protocol, e.g. "8.0.0"
	Mode     SplitMode   // empty: SplitFit
}

// Assignment is one node's share of a plan.
type Assignment struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Local  bool   `json:"local"`
	Layers int    `json:"layers"`
	Bytes  uint64 `json:"bytes"` // what its share needs
	Offer  uint64 `json:"offer"` // what it lends
}

// Exclusion is a worker left out of a plan and why, in words a person reads.
type Exclusion struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Plan is how a model is split over the head and its workers.
//
// The head runs llama-server on its CPU and keeps the first layers and
// everything outside the repeating blocks; llama-server offloads the last
// GPULayers layers to the RPC devices named by Workers, dividing them as
// TensorSplit says. Layers go to nodes in proportion to what each offer
// leaves after the node's fixed costs (a compute buffer each, and the
// embeddings and output for the head).
//
// When Fits is false, Nodes shows the best attempt (every eligible node) and
// Workers, GPULayers and TensorSplit are empty: such a plan must not start.
type Plan struct {
	Model    string       `json:"model"`
	Mode     SplitMode    `json:"mode"`
	Need     uint64       `json:"need"`    // bytes the nodes of the plan need together
	Offered  uint64       `json:"offered"` // bytes those nodes offer together
	Fits     bool         `json:"fits"`
	Reason   string       `json:"reason"`
	Nodes    []Assignment `json:"nodes"` // the head first, then Workers' order
	Excluded []Exclusion  `json:"excluded,omitempty"`

	Workers     []string  `json:"workers,omitempty"`      // IDs of the remote nodes, in --rpc order
	GPULayers   int       `json:"gpu_layers"`             // --n-gpu-layers
	TensorSplit []float64 `json:"tensor_split,omitempty"` // one per entry of Workers
}

// maxWeight caps a node's weight in the layer shares, keeping their sum far
// from overflow. It is 4 PiB, more than any machine offers.
const maxWeight = 1 << 52

// MakePlan decides which nodes hold which layers of in.Model. It does no I/O.
func MakePlan(in PlanInput) Plan {
	mode := SplitFit
	if in.Mode == SplitAll {
		mode = SplitAll
	}
	in.Head.Local = true
	eligible, excluded := eligibleWorkers(in)

	var s split
	switch mode {
	case SplitAll:
		s = makeSplit(in.Model, in.Head, eligible)
	default:
		for k := 0; k <= len(eligible); k++ {
			s = makeSplit(in.Model, in.Head, eligible[:k])
			if s.fits() {
				for _, c := range eligible[k:] {
					excluded = append(excluded, Exclusion{ID: c.ID, Name: c.Name,
						Reason: "not needed: the model fits on fewer nodes"})
				}
				break
			}
		}
	}
	for _, c := range s.idle {
		excluded = append(excluded, Exclusion{ID: c.ID, Name: c.Name,
			Reason: fmt.Sprintf("not needed: the model's %d layers all went to larger offers", in.Model.Layers)})
	}
	slices.SortStableFunc(excluded, func(a, b Exclusion) int { return cmp.Compare(a.ID, b.ID) })

	p := Plan{
		Model:    in.Model.Name,
		Mode:     mode,
		Need:     s.need,
		Offered:  s.offered,
		Fits:     s.fits(),
		Nodes:    s.nodes,
		Excluded: excluded,
	}
	if !p.Fits {
		p.Reason = s.whyNot()
		return p
	}
	p.GPULayers = in.Model.Layers - s.nodes[0].Layers
	for _, n := range s.nodes[1:] {
		p.Workers = append(p.Workers, n.ID)
		p.TensorSplit = append(p.TensorSplit, float64(n.Layers))
	}
	switch len(s.nodes) {
	case 1:
		p.Reason = "fits on this node alone"
	default:
		p.Reason = fmt.Sprintf("fits on %s", plural(len(s.nodes), "node"))
	}
	return p
}

// eligibleWorkers returns the workers that can take part, largest offer
// first (ties by ID), and the others with the reason each is left out.
func eligibleWorkers(in PlanInput) ([]Candidate, []Exclusion) {
	var ok []Candidate
	var out []Exclusion
	seen := map[string]bool{in.Head.ID: true}
	for _, w := range in.Workers {
		var why string
		switch {
		case w.ID == in.Head.ID:
			why = "is this node"
		case seen[w.ID]:
			why = "listed more than once"
		case w.RPCProtocol == "":
			why = "reports no llama.cpp RPC protocol"
		case in.Protocol == "":
			why = fmt.Sprintf("speaks llama.cpp RPC %s, this node does not know its own", w.RPCProtocol)
		case w.RPCProtocol != in.Protocol:
			why = fmt.Sprintf("speaks llama.cpp RPC %s, this node %s", w.RPCProtocol, in.Protocol)
		case w.Offer == 0:
			why = "offers no memory"
		}
		seen[w.ID] = true
		if why != "" {
			out = append(out, Exclusion{ID: w.ID, Name: w.Name, Reason: why})
			continue
		}
		w.Local = false
		ok = append(ok, w)
	}
	slices.SortStableFunc(ok, func(a, b Candidate) int {
		if c := cmp.Compare(b.Offer, a.Offer); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return ok, out
}

// split is one way of placing a model on the head and some workers.
type split struct {
	nodes   []Assignment // the head, then the workers that got layers
	idle    []Candidate  // workers that got no layer
	need    uint64
	offered uint64
}

func (s split) fits() bool {
	_, over := s.worstOverflow()
	return !over
}

// worstOverflow returns the node that exceeds its offer by the most.
func (s split) worstOverflow() (Assignment, bool) {
	var worst Assignment
	var by uint64
	found := false
	for _, n := range s.nodes {
		if n.Bytes > n.Offer && n.Bytes-n.Offer > by {
			worst, by, found = n, n.Bytes-n.Offer, true
		}
	}
	return worst, found
}

func (s split) whyNot() string {
	msg := fmt.Sprintf("needs %s, pool offers %s (%s)", formatBytes(s.need), formatBytes(s.offered), plural(len(s.nodes), "node"))
	if s.offered < s.need {
		return msg
	}
	n, _ := s.worstOverflow()
	who := n.Name
	if n.Local {
		who = "this node"
	} else if who == "" {
		who = n.ID
	}
	return fmt.Sprintf("%s, but no split fits every node: %s would need %s of the %s it offers",
		msg, who, formatBytes(n.Bytes), formatBytes(n.Offer))
}

// makeSplit shares m's layers between head and workers, workers in the order
// given, and works out what each node needs.
func makeSplit(m ModelEstimate, head Candidate, workers []Candidate) split {
	nodes := append([]Candidate{head}, workers...)
	weights := make([]uint64, len(nodes))
	for i, c := range nodes {
		fixed := m.ComputeBytes
		if i == 0 {
			fixed += m.OutputBytes
		}
		if c.Offer > fixed {
			weights[i] = min(c.Offer-fixed, maxWeight)
		}
	}
	shares := shareLayers(m.Layers, weights, m.meanLayerBytes())

	var s split
	next := 0
	for i, c := range nodes {
		if i > 0 && shares[i] == 0 {
			s.idle = append(s.idle, c)
			continue
		}
		a := Assignment{ID: c.ID, Name: c.Name, Local: i == 0, Layers: shares[i], Offer: c.Offer, Bytes: m.ComputeBytes}
		if i == 0 {
			a.Bytes += m.OutputBytes
		}
		for range shares[i] {
			a.Bytes += m.layerWeights(next) + m.KVBytesPerLayer
			next++
		}
		s.nodes = append(s.nodes, a)
		s.need += a.Bytes
		s.offered += a.Offer
	}
	return s
}

// shareLayers divides layers in proportion to weights with largest-remainder
// rounding: every index gets the whole layers its weight is due, then the
// layers left over go to the largest fractional shares, ties to the earlier
// index. A left-over layer goes first to an index with room for it (perLayer
// bytes of weight not yet used), so that rounding does not push a node past
// its weight while another has room. All-zero weights count as equal. Every
// index but the first (the head) gets at least one layer when there are
// enough to go round.
func shareLayers(layers int, weights []uint64, perLayer uint64) []int {
	shares := make([]int, len(weights))
	if layers <= 0 || len(weights) == 0 {
		return shares
	}
	w := slices.Clone(weights)
	var total uint64
	for _, x := range w {
		total += x
	}
	if total == 0 {
		for i := range w {
			w[i] = 1
		}
		total, perLayer = uint64(len(w)), 0
	}
	rems := make([]uint64, len(w))
	left := layers
	for i, x := range w {
		hi, lo := bits.Mul64(uint64(layers), x)
		q, r := bits.Div64(hi, lo, total)
		shares[i], rems[i] = int(q), r
		left -= int(q)
	}
	room := func(i int) int64 { return int64(w[i]) - int64(shares[i])*int64(perLayer) }
	hasRoom := func(i int) bool { return room(i) >= int64(perLayer) }
	for ; left > 0; left-- {
		best := 0
		for i := 1; i < len(w); i++ {
			if c := cmp.Or(compareBool(hasRoom(i), hasRoom(best)), cmp.Compare(rems[i], rems[best])); c > 0 {
				best = i
			}
		}
		shares[best]++
		rems[best] = 0
	}

	if layers < len(w)-1 {
		return shares
	}
	for i := 1; i < len(shares); i++ {
		if shares[i] > 0 {
			continue
		}
		donor := -1
		for j, s := range shares {
			if s < 2 && (j > 0 || s < 1) {
				continue
			}
			if donor < 0 || cmp.Or(cmp.Compare(room(donor), room(j)), cmp.Compare(s, shares[donor])) > 0 {
				donor = j
			}
		}
		shares[donor]--
		shares[i]++
	}
	return shares
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// String summarises the plan for a person, one node a line.
func (p Plan) String() string {
	var b strings.Builder
	reason := p.Reason
	if !p.Fits {
		reason = "does not fit: " + reason
	}
	fmt.Fprintf(&b, "model %s (split %s): %s\n", p.Model, p.Mode, reason)
	if p.Fits {
		fmt.Fprintf(&b, "needs %s of %s offered\n", formatBytes(p.Need), formatBytes(p.Offered))
	}

	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  node\tlayers\tneeds\toffers\n")
	for _, n := range p.Nodes {
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\n", nodeLabel(n.ID, n.Name, n.Local), n.Layers, formatBytes(n.Bytes), formatBytes(n.Offer))
	}
	tw.Flush()

	for _, e := range p.Excluded {
		fmt.Fprintf(&b, "excluded %s: %s\n", nodeLabel(e.ID, e.Name, false), e.Reason)
	}
	if p.Fits && len(p.Workers) > 0 {
		parts := make([]string, len(p.TensorSplit))
		for i, f := range p.TensorSplit {
			parts[i] = strconv.FormatFloat(f, 'f', -1, 64)
		}
		fmt.Fprintf(&b, "llama-server: %s over RPC, --n-gpu-layers %d, --tensor-split %s\n",
			plural(len(p.Workers), "worker"), p.GPULayers, strings.Join(parts, ","))
	}
	return b.String()
}

func nodeLabel(id, name string, local bool) string {
	label := name
	switch {
	case label == "":
		label = id
	case id != "" && id != name:
		label = fmt.Sprintf("%s (%s)", name, id)
	}
	if local {
		label += " [this node]"
	}
	return label
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// formatBytes writes a size with binary units and one decimal, e.g. "41.2 GiB".
func formatBytes(n uint64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(n) / 1024
	i := 0
	for v >= 1023.95 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
