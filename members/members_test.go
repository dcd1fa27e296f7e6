package members_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/internal/atomicfile"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/potluck-gpu/potluck/members"
	"github.com/potluck-gpu/potluck/netmesh"
)

// member is a machine of the test network: a netmesh node that is built
// but not started (it needs no network to open what is sealed to it).
type member struct {
	name string
	node *netmesh.Node
}

func (m member) recipient() members.Recipient {
	info := m.node.Info()
	return members.Recipient{Ref: members.Ref{PeerID: m.node.ID(), Name: m.name}, SealKey: info.SealKey}
}

func newMember(t *testing.T, token, name string) member {
	t.Helper()
	n, err := netmesh.New(netmesh.Config{Token: token, DataDir: t.TempDir(), Name: name}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return member{name: name, node: n}
}

func ownedNetwork(t *testing.T) (crypto.PrivKey, string, netmesh.Token) {
	t.Helper()
	key, err := netmesh.OwnerKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	enc, err := netmesh.NewOwnedToken(key.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := netmesh.ParseToken(enc)
	if err != nil {
		t.Fatal(err)
	}
	return key, enc, tok
}

// The owner removes C: B opens the new token, C cannot, and nobody but the
// owner can sign a removal that members accept.
func TestRemoval(t *testing.T) {
	key, enc, tok := ownedNetwork(t)
	b, c := newMember(t, enc, "b"), newMember(t, enc, "c")
	next, err := tok.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	removed := []members.Ref{{PeerID: c.node.ID(), Name: "c"}}
	signed, r, skipped, err := members.NewRemoval(key, tok, next, []string{"/ip4/127.0.0.1/tcp/4001/p2p/x"}, removed,
		[]members.Recipient{b.recipient(), c.recipient(), {Ref: members.Ref{PeerID: "old", Name: "old"}}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 1 || skipped[0].Name != "old" {
		t.Errorf("skipped %v, want the member without a seal key", skipped)
	}
	if _, ok := r.Grants[c.node.ID()]; ok {
		t.Error("the removed member got a grant")
	}

	got, err := members.OpenRemoval(signed, tok)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Names(c.node.ID()) || got.Names(b.node.ID()) {
		t.Errorf("removal names %v", got.RemovedIDs())
	}
	g, ok, err := got.OpenGrant(b.node.ID(), b.node.OpenSealed)
	if err != nil || !ok {
		t.Fatalf("B cannot open its grant: %v %v", ok, err)
	}
	if nt, err := netmesh.ParseToken(g.Token); err != nil || nt.Fingerprint() != next.Fingerprint() || nt.Owner() != tok.Owner() {
		t.Errorf("B's new token: %v", err)
	}
	if len(g.Bootstrap) != 1 {
		t.Errorf("bootstrap %v", g.Bootstrap)
	}
	// C holds no grant, and cannot open B's.
	if _, ok, _ := got.OpenGrant(c.node.ID(), c.node.OpenSealed); ok {
		t.Error("C has a grant")
	}
	stolen := got
	stolen.Grants = map[string][]byte{c.node.ID(): got.Grants[b.node.ID()]}
	if _, _, err := stolen.OpenGrant(c.node.ID(), c.node.OpenSealed); err == nil {
		t.Error("C opened the grant sealed to B")
	}

	// Refused: another network, a signer that is not the owner, tampering,
	// an ownerless network.
	if _, err := members.OpenRemoval(signed, next); !errors.Is(err, members.ErrNotRemoval) {
		t.Errorf("a removal for another token was accepted: %v", err)
	}
	forger, _, _ := crypto.GenerateEd25519Key(nil)
	if _, _, _, err := members.NewRemoval(forger, tok, next, nil, removed, nil, time.Now()); err == nil {
		t.Error("a key that is not the owner's made a removal")
	}
	bad := append([]byte(nil), signed...)
	bad[len(bad)-10] ^= 1
	if _, err := members.OpenRemoval(bad, tok); err == nil {
		t.Error("a tampered removal was accepted")
	}
	ownerless, _ := netmesh.ParseToken(mustNewToken(t))
	if _, _, _, err := members.NewRemoval(key, ownerless, next, nil, removed, nil, time.Now()); !errors.Is(err, members.ErrNoOwner) {
		t.Errorf("ownerless network: %v", err)
	}
	if _, err := members.OpenRemoval(signed, ownerless); err == nil {
		t.Error("a removal was accepted on an ownerless network")
	}
}

func mustNewToken(t *testing.T) string {
	t.Helper()
	s, err := netmesh.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoll(t *testing.T) {
	dir := t.TempDir()
	r, err := members.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	r.UseNetwork("owner:x")
	t0 := time.Now()
	r.Seen(members.Member{PeerID: "p1", Name: "desktop", Addrs: []string{"/ip4/10.0.0.1/tcp/1"}}, t0)
	r.Seen(members.Member{PeerID: "p2", Name: "laptop"}, t0)
	r.Seen(members.Member{PeerID: "p3", Name: "Laptop"}, t0)
	r.Seen(members.Member{PeerID: "p1", Name: "desktop"}, t0.Add(time.Minute))
	if m, err := r.Find("DESKTOP"); err != nil || m.PeerID != "p1" || !m.LastSeen.Equal(t0.Add(time.Minute)) || !m.FirstSeen.Equal(t0) || len(m.Addrs) != 1 {
		t.Errorf("find desktop: %+v %v", m, err)
	}
	if _, err := r.Find("laptop"); err == nil || !strings.Contains(err.Error(), "p2") {
		t.Errorf("an ambiguous name: %v", err)
	}
	var nf *members.NotFoundError
	if _, err := r.Find("nobody"); !errors.As(err, &nf) || !strings.Contains(err.Error(), "desktop") {
		t.Errorf("unknown member: %v", err)
	}
	r.MarkRemoved(t0, "p2")
	r.Seen(members.Member{PeerID: "p2", Name: "laptop"}, t0.Add(time.Hour))
	if !r.IsRemoved("p2") {
		t.Error("seeing a removed member made it a member again")
	}
	if err := r.Save(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, members.File))
	if err != nil || !atomicfile.Private(fi) {
		t.Fatalf("members file: %v %v", fi, err)
	}
	again, err := members.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	again.UseNetwork("owner:x")
	if got := again.List(); len(got) != 3 || !again.IsRemoved("p2") {
		t.Errorf("after reload: %+v", got)
	}
	// Another network starts an empty roll.
	again.UseNetwork("owner:y")
	if got := again.List(); len(got) != 0 {
		t.Errorf("another network's roll: %+v", got)
	}

	// A damaged file is set aside, not fatal.
	if err := os.WriteFile(filepath.Join(dir, members.File), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	r3, err := members.Open(dir)
	if r3 == nil || err == nil || !strings.Contains(err.Error(), ".damaged") {
		t.Fatalf("damaged file: %v %v", r3, err)
	}
	if _, err := os.Stat(filepath.Join(dir, members.File+".damaged")); err != nil {
		t.Error(err)
	}
}

// Whatever arrives as a notice, OpenRemoval never panics and accepts only
// what the owner signed.
func FuzzOpenRemoval(f *testing.F) {
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		f.Fatal(err)
	}
	enc, err := netmesh.NewOwnedToken(key.GetPublic())
	if err != nil {
		f.Fatal(err)
	}
	tok, _ := netmesh.ParseToken(enc)
	next, _ := tok.Rotate()
	signed, _, _, err := members.NewRemoval(key, tok, next, nil, []members.Ref{{PeerID: "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo", Name: "c"}}, nil, time.Unix(0, 0))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed)
	f.Add(signed[:len(signed)/2])
	f.Add([]byte{})
	f.Add([]byte(`{"network":"x","owner":"y","removed":[{"peer_id":"z"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := members.OpenRemoval(data, tok)
		if err != nil {
			return
		}
		if r.Owner != tok.Owner() || r.Network != tok.Fingerprint() || len(r.Removed) == 0 {
			t.Fatalf("accepted a removal for another network: %+v", r)
		}
		if string(data) != string(signed) {
			// Only the owner's own signature can verify; a different
			// encoding of the same envelope is fine, other content is not.
			if r2, err := members.OpenRemoval(signed, tok); err != nil || len(r2.Removed) != len(r.Removed) || r2.Removed[0] != r.Removed[0] {
				t.Fatalf("accepted content the owner never signed: %+v", r)
			}
		}
	})
}
