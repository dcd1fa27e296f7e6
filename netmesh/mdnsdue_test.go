package netmesh

import (
	"testing"
	"time"
)

// A member in the mesh asks the LAN after a minute per member it is
// connected to, and itself, so a mesh of 50 asks about once a minute in
// all; a member just started, still meeting the others, waits as long as
// they do.
func TestMeshAskDue(t *testing.T) {
	for _, c := range []struct {
		since  time.Duration
		peers  int
		jitter float64
		want   bool
	}{
		{59 * time.Second, 0, 1, false},
		{time.Minute, 0, 1, true},
		{2 * time.Minute, 2, 1, false},
		{3 * time.Minute, 2, 1, true},
		{48 * time.Minute, 49, 1, false},
		{50 * time.Minute, 49, 1, true},
		{25 * time.Minute, 49, 0.5, true},
		{74 * time.Minute, 49, 1.5, false},
	} {
		if got := meshAskDue(c.since, c.peers, c.jitter); got != c.want {
			t.Errorf("%v after the last question, %d peers, jitter %.1f: due %v; want %v", c.since, c.peers, c.jitter, got, c.want)
		}
	}
	for range 100 {
		if j := meshAskJitter(); j < 0.5 || j >= 1.5 {
			t.Fatalf("jitter %v outside [0.5, 1.5)", j)
		}
	}
}
