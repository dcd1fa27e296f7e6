package members_test

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/potluck-gpu/potluck/members"
	"github.com/potluck-gpu/potluck/netmesh"
)

// ownedRoll is a network whose owner is a built node, with its roll: the
// owner, members b and c, "old" (an older Potluck that announced no seal
// key) and d, removed before.
type ownedRoll struct {
	key         crypto.PrivKey
	tok         netmesh.Token
	owner, b, c member
	roll        *members.Roll
	ownerKey    func() (crypto.PrivKey, error)
	oldID, dID  string
}

func newOwnedRoll(t *testing.T) ownedRoll {
	t.Helper()
	key, enc, tok := ownedNetwork(t)
	o := ownedRoll{key: key, tok: tok, owner: newMember(t, enc, "owner"), b: newMember(t, enc, "b"), c: newMember(t, enc, "c")}
	o.ownerKey = func() (crypto.PrivKey, error) { return key, nil }
	roll, err := members.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	roll.UseNetwork(tok.Network())
	now := time.Now()
	for _, m := range []member{o.owner, o.b, o.c} {
		roll.Seen(members.Member{PeerID: m.node.ID(), Name: m.name, SealKey: m.node.Info().SealKey}, now)
	}
	o.oldID, o.dID = newMember(t, enc, "old").node.ID(), newMember(t, enc, "d").node.ID()
	roll.Seen(members.Member{PeerID: o.oldID, Name: "old"}, now)
	roll.Seen(members.Member{PeerID: o.dID, Name: "d"}, now)
	roll.MarkRemoved(now, o.dID)
	o.roll = roll
	return o
}

func TestRemove(t *testing.T) {
	o := newOwnedRoll(t)
	self := o.owner.node.ID()
	p, err := o.roll.Remove(o.tok, self, "C", []string{"/ip4/127.0.0.1/tcp/4001"}, o.ownerKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if p.Removed != (members.Ref{PeerID: o.c.node.ID(), Name: "c"}) {
		t.Errorf("removed %v, want c", p.Removed)
	}
	if want := []members.Ref{{PeerID: o.b.node.ID(), Name: "b"}}; !slices.Equal(p.Moving, want) {
		t.Errorf("moving %v, want %v", p.Moving, want)
	}
	if want := []members.Ref{{PeerID: o.oldID, Name: "old"}}; !slices.Equal(p.Skipped, want) {
		t.Errorf("skipped %v, want %v", p.Skipped, want)
	}
	next, err := netmesh.ParseToken(p.Next)
	if err != nil || next.Fingerprint() != p.NextFingerprint || next.Fingerprint() == o.tok.Fingerprint() || next.Owner() != o.tok.Owner() {
		t.Errorf("next token %v (%v): want a new token of the same owner", p.Next, err)
	}
	r, err := members.OpenRemoval(p.Signed, o.tok)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Names(o.c.node.ID()) || len(r.Grants) != 1 {
		t.Errorf("the signed removal names %v and grants %d", r.RemovedIDs(), len(r.Grants))
	}
	if got := r.Movers(self); !slices.Equal(got, []string{o.b.node.ID()}) {
		t.Errorf("movers %v, want b", got)
	}

	otherKey, _, _ := crypto.GenerateEd25519Key(nil)
	ownerless, _ := netmesh.ParseToken(mustNewToken(t))
	for _, tc := range []struct {
		name     string
		tok      netmesh.Token
		who      string
		key      func() (crypto.PrivKey, error)
		want     string
		input    bool
		notOwner bool
	}{
		{"ownerless network", ownerless, "c", o.ownerKey, "peer: only a network Potluck created", true, false},
		{"no owner key here", o.tok, "c", func() (crypto.PrivKey, error) { return nil, fs.ErrNotExist }, "only the computer that created", true, true},
		{"another key", o.tok, "c", func() (crypto.PrivKey, error) { return otherKey, nil }, "only the computer that created", true, true},
		{"unreadable key", o.tok, "c", func() (crypto.PrivKey, error) { return nil, errors.New("disk on fire") }, "disk on fire", false, false},
		{"itself", o.tok, "owner", o.ownerKey, `peer "owner": that is this computer`, true, false},
		{"removed before", o.tok, "d", o.ownerKey, `peer "d": was removed already`, true, false},
		{"nobody", o.tok, "zed", o.ownerKey, "zed", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := o.roll.Remove(tc.tok, self, tc.who, nil, tc.key, time.Now())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one saying %q", err, tc.want)
			}
			var bad interface{ InvalidInput() bool }
			if got := errors.As(err, &bad) && bad.InvalidInput(); got != tc.input {
				t.Errorf("the client's mistake: %v, want %v", got, tc.input)
			}
			var no *members.NotOwnerError
			if errors.As(err, &no) != tc.notOwner {
				t.Errorf("NotOwnerError: %v, want %v", !tc.notOwner, tc.notOwner)
			}
		})
	}
	if m, _ := o.roll.Get(o.c.node.ID()); m.IsRemoved() {
		t.Error("planning a removal marked the member removed: that is for whoever carries it out")
	}
}

func TestVerdict(t *testing.T) {
	o := newOwnedRoll(t)
	p, err := o.roll.Remove(o.tok, o.owner.node.ID(), "c", nil, o.ownerKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r, err := members.OpenRemoval(p.Signed, o.tok)
	if err != nil {
		t.Fatal(err)
	}
	// Grants of the same removal that are not what they should be.
	garbled := r
	garbled.Grants = map[string][]byte{o.b.node.ID(): []byte("not sealed")}
	foreign := foreignGrant(t, o)

	stranger := newMember(t, mustNewToken(t), "stranger")
	for _, tc := range []struct {
		name    string
		r       members.Removal
		self    member
		current bool
		want    members.Action
		warning string
	}{
		{"b moves", r, o.b, true, members.Move, ""},
		{"c was removed", r, o.c, true, members.RemovedHere, ""},
		{"heard again on a network left", r, o.b, false, members.Stale, ""},
		{"the removed hears it again", r, o.c, false, members.Stale, ""},
		{"no grant here", r, stranger, true, members.LeftBehind, "the network's owner removed c and moved the network to a new token, but did not give it to this computer"},
		{"a grant that does not open", garbled, o.b, true, members.Unreadable, "the network moved to a new token that this computer could not open: open the new token"},
		{"a grant of another owner's network", foreign, o.b, true, members.Unreadable, "the new token names another owner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.r.Verdict(tc.self.node, tc.current)
			if v.Action != tc.want {
				t.Fatalf("action %v (err %v), want %v", v.Action, v.Err, tc.want)
			}
			if w := v.Warning(tc.r); !strings.Contains(w, tc.warning) || (tc.warning == "") != (w == "") {
				t.Errorf("warning %q, want one saying %q", w, tc.warning)
			}
			if v.Action == members.Move && v.Grant.Token != p.Next {
				t.Errorf("grant token %q, want the plan's next token", v.Grant.Token)
			}
		})
	}
}

// foreignGrant is a removal the owner signed that moves b to a token of
// another owner: a member must not follow it.
func foreignGrant(t *testing.T, o ownedRoll) members.Removal {
	t.Helper()
	_, _, other := ownedNetwork(t)
	signed, _, _, err := members.NewRemoval(o.key, o.tok, other, nil, []members.Ref{{PeerID: o.c.node.ID(), Name: "c"}},
		[]members.Recipient{o.b.recipient()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r, err := members.OpenRemoval(signed, o.tok)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestApplied(t *testing.T) {
	var a members.Applied
	one, two := []byte("one"), []byte("two")
	if a.Has(one) {
		t.Error("an empty set has a removal")
	}
	if !a.Add(one) || a.Add(one) {
		t.Error("Add reports news the first time only")
	}
	if !a.Has(one) || a.Has(two) {
		t.Error("Has after Add")
	}
}

func TestRefNames(t *testing.T) {
	got := members.RefNames([]members.Ref{{PeerID: "12D3a", Name: "b"}, {PeerID: "12D3c"}})
	if want := "b, 12D3c"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
