package engine

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/potluck-gpu/potluck/internal/size"
)

// maxSearch is how many offload devices the fastest-plan search tries every
// subset of (2^maxSearch subsets); beyond it, only the cheapest per layer
// take part.
const maxSearch = 12

// maxWeight caps a device's weight in proportional shares, keeping their sum
// far from overflow. It is 4 PiB, more than any machine offers.
const maxWeight = 1 << 52

// planDev is one device in the pool.
type planDev struct {
	index int // in pool.devs
	pos   int // in node.Devices: a worker's device k is the head's RPC(first+k)
	node  Candidate
	dev   PlanDevice
	cost  float64 // seconds for a mean layer
}

// pool is every device a plan may use: the head's CPU (devs[0]), the head's
// other devices, then the eligible workers' devices in --rpc order.
type pool struct {
	m        ModelEstimate
	head     Candidate
	workers  []Candidate // eligible, in --rpc order
	devs     []planDev
	offload  []planDev    // devs[1:]
	perLayer uint64       // mean layer weights and cache
	layerW   float64      // mean layer weights
	forced   map[int]bool // pool indexes of devices the user named
}

func newPool(in PlanInput) (*pool, []Exclusion) {
	p := &pool{m: in.Model, head: in.Head, forced: map[int]bool{}}
	workers, excluded := eligibleWorkers(in)
	p.workers = workers
	p.perLayer = in.Model.meanLayerBytes()
	p.layerW = float64(p.perLayer - min(p.perLayer, in.Model.KVBytesPerLayer))
	add := func(c Candidate, pos int, d PlanDevice) {
		p.devs = append(p.devs, planDev{index: len(p.devs), pos: pos, node: c, dev: d, cost: d.Speed.layerCost(p.layerW)})
	}
	cpu := PlanDevice{Name: "CPU", Backend: "CPU", Speed: CPUSpeed(0)}
	for _, d := range in.Head.Devices {
		if d.IsCPU() {
			cpu = d
		}
	}
	add(in.Head, -1, cpu)
	for i, d := range in.Head.Devices {
		if d.IsCPU() {
			continue
		}
		named := slices.ContainsFunc(in.Devices, func(s string) bool { return strings.EqualFold(s, d.Name) })
		switch {
		case len(in.Devices) > 0 && !named:
			excluded = append(excluded, Exclusion{ID: in.Head.ID, Name: in.Head.Name, Device: d.Name, Local: true, Reason: "not named by --device"})
		case d.Offer == 0:
			excluded = append(excluded, Exclusion{ID: in.Head.ID, Name: in.Head.Name, Device: d.Name, Local: true, Reason: "offers no memory"})
		default:
			if named {
				p.forced[len(p.devs)] = true
			}
			add(in.Head, i, d)
		}
	}
	for _, w := range workers {
		for i, d := range w.Devices {
			if d.Offer > 0 { // a device that lends nothing holds nothing, but keeps its place
				add(w, i, d)
			}
		}
	}
	p.offload = p.devs[1:]
	return p, excluded
}

// eligibleWorkers returns the workers that can take part, by ID, and the
// others with the reason each is left out.
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
		case w.Offer() == 0:
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
	slices.SortStableFunc(ok, func(a, b Candidate) int { return cmp.Compare(a.ID, b.ID) })
	return ok, out
}

func (p *pool) exclude(c planDev, reason string) Exclusion {
	e := Exclusion{ID: c.node.ID, Name: c.node.Name, Local: c.node.Local, Reason: reason}
	if c.node.Local || len(c.node.Devices) > 1 {
		e.Device = c.dev.Name
	}
	return e
}

// layout is one way of placing the model: layers per device (by pool
// index), in pipeline order, and what it costs.
type layout struct {
	order   []int // device indexes in pipeline order: the CPU, then --device order
	layers  []int // by pool index
	output  int   // pool index of the device holding the output layer
	bytes   []uint64
	seconds []float64 // by pool index
	network float64
	total   float64 // seconds per token
	fits    bool
	ok      bool // a real layout (every device in it has layers)
}

func (l layout) tps() float64 {
	if l.total <= 0 {
		return 0
	}
	return 1 / l.total
}

// devices used, the CPU not counted.
func (l layout) used() int { return len(l.order) - 1 }

// pipeline orders the offload devices of a layout: the workers' devices in
// --rpc order, then the head's own. The last one takes the output layer
// too, so it is the head's own device that offers most when there is one,
// else the remote one that offers most.
func (p *pool) pipeline(set []planDev) []int {
	order := []int{0}
	for _, c := range set {
		if !c.node.Local {
			order = append(order, c.index)
		}
	}
	for _, c := range set {
		if c.node.Local {
			order = append(order, c.index)
		}
	}
	last := -1
	for i, idx := range order[1:] {
		c, cur := p.devs[idx], planDev{}
		if last >= 0 {
			cur = p.devs[order[last]]
		}
		if last < 0 || c.node.Local && !cur.node.Local || c.node.Local == cur.node.Local && c.dev.Offer > cur.dev.Offer {
			last = i + 1
		}
	}
	if last > 0 {
		idx := order[last]
		order = append(slices.Delete(order, last, last+1), idx)
	}
	return order
}

// capacity is how many mean layers device c can hold beside fixed bytes.
func (p *pool) capacity(c planDev, fixed uint64) int {
	if c.dev.Offer <= fixed || p.perLayer == 0 {
		if p.perLayer == 0 && c.dev.Offer >= fixed {
			return p.m.Layers
		}
		return 0
	}
	return int(min((c.dev.Offer-fixed)/p.perLayer, uint64(p.m.Layers)))
}

// greedy places the layers on set (plus the head's CPU unless full), the
// cheapest device per layer first, as many as each holds. With full, the
// CPU keeps no layer. The output goes to the last device of the pipeline,
// as llama.cpp puts it: --n-gpu-layers counts it first.
func (p *pool) greedy(set []planDev, full bool) layout {
	l := p.newLayout(p.pipeline(set))
	if full && len(set) == 0 {
		return layout{}
	}
	if len(set) > 0 {
		l.output = l.order[len(l.order)-1]
	}
	byCost := slices.Clone(set)
	if !full {
		byCost = append(byCost, p.devs[0])
	}
	slices.SortStableFunc(byCost, func(a, b planDev) int {
		return cmp.Or(compareBool(p.forced[b.index], p.forced[a.index]), cmp.Compare(a.cost, b.cost),
			compareBool(b.node.Local, a.node.Local), cmp.Compare(a.index, b.index))
	})
	left := p.m.Layers
	for _, c := range byCost {
		n := min(p.capacity(c, p.fixedBytes(c.index, l.output)), left)
		l.layers[c.index] = n
		left -= n
	}
	if left > 0 {
		return layout{}
	}
	for _, c := range set {
		if l.layers[c.index] == 0 {
			return layout{} // the same as the layout without it
		}
	}
	p.finish(&l)
	return l
}

// proportional spreads the layers over the CPU and every device of set in
// proportion to the room each has for layers.
func (p *pool) proportional(set []planDev) layout {
	l := p.newLayout(p.pipeline(set))
	weights := make([]uint64, len(l.order))
	if len(set) > 0 {
		l.output = l.order[len(l.order)-1]
	}
	for i, idx := range l.order {
		c := p.devs[idx]
		if fixed := p.fixedBytes(idx, l.output); c.dev.Offer > fixed {
			weights[i] = min(c.dev.Offer-fixed, maxWeight)
		}
	}
	shares := shareLayers(p.m.Layers, weights, p.m.meanLayerBytes())
	for i, idx := range l.order {
		l.layers[idx] = shares[i]
	}
	p.finish(&l)
	return l
}

func (p *pool) newLayout(order []int) layout {
	return layout{order: order, layers: make([]int, len(p.devs)), bytes: make([]uint64, len(p.devs)),
		seconds: make([]float64, len(p.devs)), ok: true}
}

// fixedBytes is what device idx needs besides layers: a compute buffer,
// and the embeddings and output where they are.
func (p *pool) fixedBytes(idx, output int) uint64 {
	b := p.m.ComputeBytes
	switch {
	case idx == 0 && output == 0:
		b += p.m.OutputBytes
	case idx == 0:
		b += p.m.OutputBytes - p.outputMoved()
	case idx == output:
		b += p.m.OutputLayerBytes
	}
	return b
}

// outputMoved is what the head's CPU no longer holds when the output layer
// is on another device.
func (p *pool) outputMoved() uint64 {
	if p.m.OutputTied {
		return 0
	}
	return min(p.m.OutputLayerBytes, p.m.OutputBytes)
}

// outputRead is the bytes of the output layer read per token.
func (p *pool) outputRead() uint64 {
	if p.m.OutputLayerBytes > 0 {
		return p.m.OutputLayerBytes
	}
	return p.m.OutputBytes / 2
}

// finish works out the bytes and seconds of a layout whose layer counts
// are set, and whether it fits. Layers go to devices in pipeline order.
func (p *pool) finish(l *layout) {
	// The output goes with the last device that holds layers: llama.cpp
	// gives it the last share of the split. With no layer offloaded it
	// stays on the CPU.
	if l.output != 0 && l.layers[l.output] == 0 {
		l.output = 0
		for _, idx := range l.order[1:] {
			if l.layers[idx] > 0 {
				l.output = idx
			}
		}
	}
	// Devices that got no layer are left out (the CPU always stays).
	l.order = slices.DeleteFunc(l.order, func(idx int) bool { return idx != 0 && l.layers[idx] == 0 && idx != l.output })
	next := 0
	l.fits = true
	workers := map[string]bool{}
	for _, idx := range l.order {
		c := p.devs[idx]
		s := c.dev.Speed
		l.bytes[idx] = p.fixedBytes(idx, l.output)
		var read float64
		for range l.layers[idx] {
			w := p.m.layerWeights(next)
			l.bytes[idx] += w + p.m.KVBytesPerLayer
			read += float64(w)
			next++
		}
		if idx == l.output {
			read += float64(p.outputRead()) // the output matrix; the embeddings are only looked up
		}
		bw := s.BytesPerSecond
		if bw <= 0 {
			bw = defaultHostBandwidth
		}
		l.seconds[idx] = s.BaseSeconds + float64(l.layers[idx])*s.LayerSeconds + read/bw
		l.total += l.seconds[idx]
		if l.bytes[idx] > c.dev.Offer {
			l.fits = false
		}
		if !c.node.Local && !workers[c.node.ID] {
			workers[c.node.ID] = true
			l.network += hopSeconds(c.node.RTT)
		}
	}
	l.total += l.network
}

// better says whether a is a better layout than b: faster, then fewer
// devices, then fewer workers.
func better(a, b layout) bool {
	if !b.ok || !b.fits {
		return a.ok && a.fits
	}
	if !a.ok || !a.fits {
		return false
	}
	const same = 1e-9
	switch {
	case a.total < b.total-same:
		return true
	case a.total > b.total+same:
		return false
	}
	return a.used() < b.used()
}

// fastest searches the subsets of offload devices for the fastest layout
// that fits. It also returns, per worker ID and per device ("id/name"), the
// fastest layout that uses it, to explain what was left out.
func (p *pool) fastest() (layout, map[string]layout) {
	cands := slices.Clone(p.offload)
	if len(cands) > maxSearch {
		slices.SortStableFunc(cands, func(a, b planDev) int {
			return cmp.Or(compareBool(p.forced[b.index], p.forced[a.index]), cmp.Compare(a.cost, b.cost), cmp.Compare(b.dev.Offer, a.dev.Offer))
		})
		cands = cands[:maxSearch]
	}
	var best layout
	with := map[string]layout{}
	note := func(key string, l layout) {
		if better(l, with[key]) {
			with[key] = l
		}
	}
	for mask := range 1 << len(cands) {
		var set []planDev
		missing := len(p.forced)
		for i, c := range cands {
			if mask&(1<<i) != 0 {
				set = append(set, c)
				if p.forced[c.index] {
					missing--
				}
			}
		}
		if missing > 0 {
			continue // the user named a device this set leaves out
		}
		for _, full := range []bool{true, false} {
			l := p.greedy(set, full)
			if !l.ok || !l.fits {
				continue
			}
			if full && missing == 0 && len(p.forced) > 0 {
				// The user named devices: everything goes on them
				// when it fits, the output too.
				if better(l, best) || !best.ok || best.output == 0 {
					best = l
				}
				break
			}
			if better(l, best) {
				best = l
			}
			for _, idx := range l.order[1:] {
				c := p.devs[idx]
				note(c.node.ID+"/"+c.dev.Name, l)
				note(c.node.ID, l)
			}
		}
	}
	if !best.ok {
		// Nothing fits: show every device filled as far as it goes.
		best = p.proportional(p.offload)
	}
	return best, with
}

// explain says why each device the fastest layout leaves out is left out.
func (p *pool) explain(best layout, with map[string]layout) []Exclusion {
	if !best.fits {
		return nil // every device is in the attempt
	}
	used := map[int]bool{}
	usedNode := map[string]bool{}
	for _, idx := range best.order {
		used[idx] = true
		usedNode[p.devs[idx].node.ID] = true
	}
	var out []Exclusion
	// whatIf is the fastest layout with devices added to the chosen ones,
	// spread in proportion, for a device no layout that fits chose.
	whatIf := func(extra ...planDev) layout {
		var set []planDev
		for _, idx := range best.order[1:] {
			set = append(set, p.devs[idx])
		}
		l := p.proportional(append(set, extra...))
		if !l.fits {
			return layout{}
		}
		return l
	}
	why := func(w layout, who string) string {
		switch {
		case !w.ok:
			return fmt.Sprintf("not needed: the model fits without %s", who)
		case w.tps() < best.tps()*0.995:
			return fmt.Sprintf("slower with it: %s → %s", formatRate(best.tps()), formatRate(w.tps()))
		}
		return "not needed: as fast without it"
	}
	for _, w := range p.workers {
		if usedNode[w.ID] {
			continue
		}
		l, ok := with[w.ID]
		if !ok {
			var devs []planDev
			for _, c := range p.offload {
				if c.node.ID == w.ID {
					devs = append(devs, c)
				}
			}
			l = whatIf(devs...)
		}
		out = append(out, Exclusion{ID: w.ID, Name: w.Name, Reason: why(l, "it")})
	}
	for _, c := range p.offload {
		if used[c.index] || (!c.node.Local && !usedNode[c.node.ID]) {
			continue
		}
		l, ok := with[c.node.ID+"/"+c.dev.Name]
		if !ok {
			l = whatIf(c)
		}
		out = append(out, Exclusion{ID: c.node.ID, Name: c.node.Name, Device: c.dev.Name, Local: c.node.Local, Reason: why(l, describe(c))})
	}
	return out
}

// plan turns a layout into a Plan.
func (p *pool) plan(mode SplitMode, l layout, excluded []Exclusion) Plan {
	pl := Plan{Model: p.m.Name, Mode: mode, Fits: l.fits, Excluded: excluded, NetworkSeconds: l.network}
	if l.total > 0 {
		pl.TokensPerSecond = 1 / l.total
	}
	// Remote devices take names in --rpc order over every device of every
	// worker the plan uses.
	use := map[int]string{}
	var workers []string // in --rpc order: as given, not as the layers go
	seen := map[string]bool{}
	for _, idx := range l.order[1:] {
		if c := p.devs[idx]; !c.node.Local {
			seen[c.node.ID] = true
		}
	}
	first := 0
	for _, w := range p.workers {
		if !seen[w.ID] {
			continue
		}
		workers = append(workers, w.ID)
		for _, c := range p.devs {
			if c.node.ID == w.ID && !c.node.Local {
				use[c.index] = RPCDeviceName(first + c.pos)
			}
		}
		first += len(w.Devices)
	}
	nodeIndex := map[string]int{}
	for _, idx := range l.order {
		c := p.devs[idx]
		name := c.dev.Name
		if u, ok := use[idx]; ok {
			name = u
		}
		a := DeviceAssignment{Node: c.node.ID, NodeName: c.node.Name, Local: c.node.Local, Device: c.dev.Name, Use: name,
			Backend: c.dev.Backend, Description: c.dev.Description, Layers: l.layers[idx], Output: idx == l.output,
			Bytes: l.bytes[idx], Offer: c.dev.Offer, Seconds: l.seconds[idx]}
		if l.total > 0 {
			a.Share = l.seconds[idx] / l.total
		}
		pl.Devices = append(pl.Devices, a)
		pl.Need += a.Bytes
		pl.Offered += a.Offer
		i, ok := nodeIndex[c.node.ID]
		if !ok {
			i = len(pl.Nodes)
			nodeIndex[c.node.ID] = i
			pl.Nodes = append(pl.Nodes, Assignment{ID: c.node.ID, Name: c.node.Name, Local: c.node.Local})
		}
		pl.Nodes[i].Layers += a.Layers
		pl.Nodes[i].Bytes += a.Bytes
		pl.Nodes[i].Offer += a.Offer
	}
	if !l.fits {
		pl.Reason = p.whyNot(pl)
		return pl
	}
	pl.Workers = workers
	for _, a := range pl.Devices[1:] {
		pl.ServerDevices = append(pl.ServerDevices, a.Use)
		pl.TensorSplit = append(pl.TensorSplit, float64(a.Layers))
		pl.GPULayers += a.Layers
	}
	if l.output != 0 && len(pl.TensorSplit) > 0 {
		// llama.cpp counts the output as the first layer to offload, and
		// puts it on the last device.
		pl.GPULayers++
		pl.TensorSplit[len(pl.TensorSplit)-1]++
	}
	where := "this node alone"
	if len(pl.Nodes) > 1 {
		where = plural(len(pl.Nodes), "node")
	}
	gpus := len(pl.Devices) - 1
	switch {
	case gpus == 0:
		pl.Reason = "fits on " + where + ", on the CPU"
	default:
		pl.Reason = fmt.Sprintf("fits on %s, %s besides the CPU", where, plural(gpus, "device"))
	}
	return pl
}

func (p *pool) whyNot(pl Plan) string {
	msg := fmt.Sprintf("needs %s, pool offers %s (%s on %s)", size.Format(pl.Need), size.Format(pl.Offered),
		plural(len(pl.Devices), "device"), plural(len(pl.Nodes), "node"))
	if pl.Offered < pl.Need {
		return msg
	}
	var worst DeviceAssignment
	var by uint64
	for _, a := range pl.Devices {
		if a.Bytes > a.Offer && a.Bytes-a.Offer > by {
			worst, by = a, a.Bytes-a.Offer
		}
	}
	who := worst.Device
	if worst.Local {
		who = "this node's " + who
	} else {
		who = cmp.Or(worst.NodeName, worst.Node) + "'s " + who
	}
	return fmt.Sprintf("%s, but no split fits every device: %s would need %s of the %s it offers",
		msg, who, size.Format(worst.Bytes), size.Format(worst.Offer))
}

// shareLayers divides layers in proportion to weights with largest-remainder
// rounding: every index gets the whole layers its weight is due, then the
// layers left over go to the largest fractional shares, ties to the earlier
// index. A left-over layer goes first to an index with room for it (perLayer
// bytes of weight not yet used), so that rounding does not push a device past
// its weight while another has room. All-zero weights count as equal. Every
// index but the first (the head's CPU) gets at least one layer when there are
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
