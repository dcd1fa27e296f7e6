package worker

import (
	"testing"

	"github.com/potluck-gpu/potluck/nodestate"
)

func TestNeededRelease(t *testing.T) {
	head := func(id, name, release, proto string) nodestate.Peer {
		return nodestate.Peer{ID: id, Name: name, Online: true, Head: []string{"sha"}, Engine: &nodestate.PeerEngine{Release: release, RPCProtocol: proto}}
	}
	tests := []struct {
		name   string
		heads  []nodestate.Peer
		speaks string
		want   string // release; "" none
		head   string
	}{
		{"no heads", nil, "8.0.0", "", ""},
		{"one head on the worker's protocol", []nodestate.Peer{head("a", "A", "0.7.0", "8.0.0")}, "8.0.0", "", ""},
		{"one head on another", []nodestate.Peer{head("a", "A", "0.5.0", "7.0.0")}, "8.0.0", "0.5.0", "A"},
		{"a head it already serves keeps it", []nodestate.Peer{head("a", "A", "0.5.0", "7.0.0"), head("b", "B", "0.7.0", "8.0.0")}, "8.0.0", "", ""},
		{"the most heads win", []nodestate.Peer{head("c", "C", "0.6.0", "7.5.0"), head("a", "A", "0.5.0", "7.0.0"), head("b", "B", "0.5.0", "7.0.0")}, "8.0.0", "0.5.0", "A"},
		{"a tie goes to the lowest peer id", []nodestate.Peer{head("z", "Z", "0.6.0", "7.5.0"), head("m", "M", "0.5.0", "7.0.0")}, "8.0.0", "0.5.0", "M"},
		{"offline heads and heads without a release do not count", []nodestate.Peer{
			{ID: "a", Name: "A", Online: false, Head: []string{"x"}, Engine: &nodestate.PeerEngine{Release: "0.5.0", RPCProtocol: "7.0.0"}},
			{ID: "b", Name: "B", Online: true, Head: []string{"x"}, Engine: &nodestate.PeerEngine{RPCProtocol: "7.0.0"}},
			{ID: "c", Name: "C", Online: true, Head: []string{"x"}},
		}, "8.0.0", "", ""},
		{"a peer serving no split is no head", []nodestate.Peer{{ID: "a", Online: true, Engine: &nodestate.PeerEngine{Release: "0.5.0", RPCProtocol: "7.0.0"}}}, "8.0.0", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			need, ok := NeededRelease(tt.heads, tt.speaks)
			if ok != (tt.want != "") || need.Release != tt.want || need.Head != tt.head {
				t.Errorf("neededRelease = %+v, %v; want %q for %q", need, ok, tt.want, tt.head)
			}
		})
	}
}
