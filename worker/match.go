package worker

import (
	"cmp"
	"slices"

	"github.com/potluck-gpu/potluck/nodestate"
)

// Need is a release that heads in the pool run and this node's worker
// does not speak, and a head that needs it.
type Need struct {
	Release, Protocol string
	Head              string // its name
}

// NeededRelease looks at the heads in the pool (peers that serve a model
// as a split's head) and returns the release the worker should run to
// lend to them: none while it speaks the protocol of one of them already,
// so that a worker never leaves a split it is in; otherwise the release of
// the most heads, the lowest peer id breaking ties.
func NeededRelease(heads []nodestate.Peer, speaks string) (Need, bool) {
	type group struct {
		need  Need
		count int
		first string
	}
	var groups []*group
	for _, p := range heads {
		e := p.Engine
		if e == nil || e.RPCProtocol == "" || e.Release == "" || len(p.Head) == 0 || !p.Online {
			continue
		}
		if e.RPCProtocol == speaks {
			return Need{}, false
		}
		i := slices.IndexFunc(groups, func(g *group) bool { return g.need.Protocol == e.RPCProtocol })
		if i < 0 {
			groups = append(groups, &group{need: Need{e.Release, e.RPCProtocol, p.Name}, first: p.ID})
			i = len(groups) - 1
		}
		g := groups[i]
		g.count++
		if p.ID < g.first {
			g.first, g.need.Head = p.ID, p.Name
		}
	}
	if len(groups) == 0 {
		return Need{}, false
	}
	slices.SortFunc(groups, func(a, b *group) int { return cmp.Or(b.count-a.count, cmp.Compare(a.first, b.first)) })
	return groups[0].need, true
}
