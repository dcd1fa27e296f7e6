package host

import (
	"testing"

	"github.com/potluck-gpu/potluck/nodestate"
)

// A refusal names the member by its name, or while its info has not
// arrived yet by a shortened peer id, never by a bare one.
func TestAskerName(t *testing.T) {
	const id = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVabcd"
	peers := []nodestate.Peer{{ID: "12D3KooWnamed", Name: "alice"}, {ID: id}}
	for _, c := range []struct{ id, want string }{
		{"12D3KooWnamed", "alice"},
		{id, "a member whose name has not arrived yet (12D3KooW…abcd)"},
		{"12D3KooWnotlisted0000000000wxyz", "a member whose name has not arrived yet (12D3KooW…wxyz)"},
		{"short-id", "a member whose name has not arrived yet (short-id)"},
	} {
		if got := askerName(peers, c.id); got != c.want {
			t.Errorf("askerName(%q) = %q, want %q", c.id, got, c.want)
		}
	}
}
