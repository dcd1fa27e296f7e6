package host

import (
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/nodestate"
)

func TestSamePlan(t *testing.T) {
	a := engine.Plan{Fits: true, GPULayers: 3, Workers: []string{"w1", "w2"}, TensorSplit: []float64{2, 1}}
	b := a
	b.Excluded = []engine.Exclusion{{ID: "old", Reason: "speaks 7.0.0"}}
	if !samePlan(a, b) {
		t.Error("plans differing only in exclusions should be the same")
	}
	b.Workers = []string{"w2", "w1"}
	if samePlan(a, b) {
		t.Error("a different --rpc order is a different plan")
	}
}

func TestLendsHere(t *testing.T) {
	for _, c := range []struct {
		lendTo []string
		want   bool
	}{
		{nil, true},
		{[]string{"worker", "head"}, true},
		{[]string{"worker"}, false},
		{[]string{"worker", "other"}, false},
	} {
		if got := lendsHere(nodestate.Peer{ID: "worker", LendTo: c.lendTo}, "head"); got != c.want {
			t.Errorf("a worker lending to %q lends to head: %v, want %v", c.lendTo, got, c.want)
		}
	}
}

// A split leaves out workers reached only through a relay, or too far
// away, and says why; the rest may join.
func TestSplitUnfit(t *testing.T) {
	for _, c := range []struct {
		p       nodestate.Peer
		inSplit bool
		want    string
	}{
		{nodestate.Peer{Conn: netmesh.ConnDirect, RTTMS: 2, MinRTTMS: 2}, false, ""},
		{nodestate.Peer{Conn: netmesh.ConnHolePunched, RTTMS: 30, MinRTTMS: 30}, false, ""},
		{nodestate.Peer{Conn: netmesh.ConnNone}, false, ""},
		{nodestate.Peer{Conn: netmesh.ConnRelayed, RTTMS: 3, MinRTTMS: 3}, false, "relay"},
		{nodestate.Peer{Conn: netmesh.ConnRelayLost}, true, "relay"},
		{nodestate.Peer{Conn: netmesh.ConnHolePunched, RTTMS: 180, MinRTTMS: 180}, false, "round trip of 180 ms"},
		// One slow round trip (a busy moment) does not count.
		{nodestate.Peer{Conn: netmesh.ConnDirect, RTTMS: 400, MinRTTMS: 3}, false, ""},
		// A worker in the split while the load fills its link stays.
		{nodestate.Peer{Conn: netmesh.ConnDirect, RTTMS: 900, MinRTTMS: 900}, true, ""},
	} {
		got := splitUnfit(c.p, c.inSplit)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("splitUnfit(%s, %.0f ms) = %q; want %q", c.p.Conn, c.p.RTTMS, got, c.want)
		}
	}
}
