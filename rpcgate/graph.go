package rpcgate

import "encoding/binary"

// checkGraph checks a GRAPH_COMPUTE payload and returns its device and,
// in protocol 8, its uid: every tensor as checkTensor does, every node and
// source present and named once, no cycle, a bounded depth, and the
// shapes ggml itself would insist on for the operations whose kernels
// trust them.
func (g *gate) checkGraph(p []byte) (device uint32, uid uint64, r *Refusal) {
	le32 := func(off int) uint32 { return binary.LittleEndian.Uint32(p[off:]) }
	if g.major == 0 {
		return 0, 0, refuse(ReasonFraming, "GRAPH_COMPUTE before the worker's HELLO")
	}
	off := 4
	if len(p) < 8 {
		return 0, 0, refuse(ReasonFraming, "a graph of %d bytes", len(p))
	}
	device = le32(0)
	if g.major >= 8 {
		if len(p) < 16 {
			return 0, 0, refuse(ReasonFraming, "a graph of %d bytes", len(p))
		}
		uid = binary.LittleEndian.Uint64(p[4:])
		off = 12
	}
	if g.devices > 0 && device >= g.devices {
		return 0, 0, refuse(ReasonFraming, "device %d of %d", device, g.devices)
	}
	n := int(le32(off))
	off += 4
	if n == 0 || n > g.lim.maxNodes() || len(p) < off+8*n+4 {
		return 0, 0, refuse(ReasonGraph, "a graph of %d nodes in %d bytes", n, len(p))
	}
	nodes := p[off : off+8*n]
	off += 8 * n
	count := int(le32(off))
	off += 4
	if count > g.lim.maxTensors() || len(p) != off+tensorSize*count {
		return 0, 0, refuse(ReasonGraph, "%d tensors in %d bytes", count, len(p)-off)
	}
	tab := make(map[uint64]tensor, count)
	for i := range count {
		t := tensor(p[off+i*tensorSize : off+(i+1)*tensorSize])
		if t.id() == 0 {
			return 0, 0, refuse(ReasonGraph, "a tensor without id")
		}
		if _, dup := tab[t.id()]; dup {
			// The worker keeps the first of two; the gate would check one
			// and let the other run.
			return 0, 0, refuse(ReasonGraph, "tensor %#x twice", t.id())
		}
		if r := g.checkTensor(t); r != nil {
			return 0, 0, r
		}
		tab[t.id()] = t
	}
	for _, t := range tab {
		for i := range maxSrc {
			if s := t.src(i); s != 0 && tab[s] == nil {
				return 0, 0, refuse(ReasonGraph, "tensor %#x reads %#x, which the graph lacks", t.id(), s)
			}
		}
		if v := t.viewSrc(); v != 0 && tab[v] == nil {
			return 0, 0, refuse(ReasonGraph, "tensor %#x views %#x, which the graph lacks", t.id(), v)
		}
	}
	if r := g.checkDepth(tab); r != nil {
		return 0, 0, r
	}
	for i := range n {
		id := binary.LittleEndian.Uint64(nodes[8*i:])
		t := tab[id]
		if t == nil {
			return 0, 0, refuse(ReasonGraph, "node %d (%#x) is no tensor of the graph", i, id)
		}
		if r := checkShapes(t, tab); r != nil {
			return 0, 0, r
		}
	}
	return device, uid, nil
}

// checkDepth refuses a cycle, which the worker would follow until its
// stack ran out, and chains of sources deeper than the limit.
func (g *gate) checkDepth(tab map[uint64]tensor) *Refusal {
	const (
		unseen = iota
		open
		done
	)
	state := make(map[uint64]uint8, len(tab))
	depth := make(map[uint64]int, len(tab))
	type frame struct {
		id   uint64
		next int // the next source to visit; maxSrc is view_src
	}
	for root := range tab {
		if state[root] == done {
			continue
		}
		stack := []frame{{id: root}}
		state[root] = open
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			if f.next > maxSrc {
				t := tab[f.id]
				d := 0
				for i := range maxSrc {
					d = max(d, depth[t.src(i)])
				}
				depth[f.id] = max(d, depth[t.viewSrc()]) + 1
				if depth[f.id] > g.lim.maxDepth() {
					return refuse(ReasonGraph, "a chain of more than %d tensors", g.lim.maxDepth())
				}
				state[f.id] = done
				stack = stack[:len(stack)-1]
				continue
			}
			t := tab[f.id]
			var s uint64
			if f.next < maxSrc {
				s = t.src(f.next)
			} else {
				s = t.viewSrc()
			}
			f.next++
			switch {
			case s == 0 || state[s] == done:
			case state[s] == open:
				return refuse(ReasonGraph, "tensor %#x depends on itself", s)
			default:
				state[s] = open
				stack = append(stack, frame{id: s})
			}
		}
	}
	return nil
}

// checkShapes checks a node whose kernel trusts its shapes (ggml asserts
// them when it builds the graph, and release builds of the kernels do
// not): reading or writing rows past a tensor otherwise.
func checkShapes(t tensor, tab map[uint64]tensor) *Refusal {
	src := func(i int) tensor { return tab[t.src(i)] }
	switch t.op() {
	case opGetRows:
		a, b := src(0), src(1)
		if a == nil || b == nil || a.ne(2) != b.ne(1) || a.ne(3) != b.ne(2) || b.ne(3) != 1 || b.typ() != typeI32 ||
			t.ne(0) != a.ne(0) || t.ne(1) != b.ne(0) || t.ne(2) != b.ne(1) || t.ne(3) != b.ne(2) {
			return refuse(ReasonShape, "GET_ROWS of shapes ggml would not build")
		}
	case opSetRows:
		b, c := src(0), src(1)
		if b == nil || c == nil || t.ne(0) != b.ne(0) || t.ne(2) != b.ne(2) || t.ne(3) != b.ne(3) ||
			b.ne(1) != c.ne(0) || c.ne(1) == 0 || b.ne(2)%c.ne(1) != 0 || c.ne(2) == 0 || b.ne(3)%c.ne(2) != 0 || c.ne(3) != 1 ||
			(b.typ() != typeF32 && b.typ() != typeF16) || (c.typ() != typeI32 && c.typ() != typeI64) {
			return refuse(ReasonShape, "SET_ROWS of shapes ggml would not build")
		}
		if a := src(2); a != nil && !t.sameShape(a) {
			return refuse(ReasonShape, "SET_ROWS into a view of another shape")
		}
	case opGatedDeltaNet:
		v, state := src(2), src(5)
		k := uint64(max(t.param(0), 0))
		if v == nil || state == nil || k == 0 || t.ne(0) != v.ne(0)*v.ne(1) || t.ne(1) != v.ne(2)*v.ne(3)+k*v.ne(0)*v.ne(3) ||
			t.ne(2) != 1 || t.ne(3) != 1 || state.ne(0) != v.ne(0) || state.ne(1) != v.ne(0) || state.ne(2) != v.ne(1) || state.ne(3) != v.ne(3) {
			return refuse(ReasonShape, "GATED_DELTA_NET of shapes ggml would not build")
		}
	}
	return nil
}
