package members

import (
	"slices"
	"testing"
	"time"
)

// A name is the member first seen with it; a peer id is itself; a removed
// member and a name nobody has name nobody.
func TestIDs(t *testing.T) {
	r, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	r.Seen(Member{PeerID: "alice-id", Name: "alice"}, t0)
	r.Seen(Member{PeerID: "mallory-id", Name: "alice"}, t0.Add(time.Minute)) // takes alice's name later
	r.Seen(Member{PeerID: "bob-id", Name: "bob"}, t0)
	r.Seen(Member{PeerID: "eve-id", Name: "eve"}, t0)
	r.MarkRemoved(t0.Add(time.Hour), "eve-id")
	got := r.IDs([]string{"alice", "bob-id", "eve", "nobody"})
	if want := []string{"alice-id", "bob-id"}; !slices.Equal(got, want) {
		t.Errorf("IDs = %v, want %v", got, want)
	}
}
