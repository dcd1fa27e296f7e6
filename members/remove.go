package members

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/potluck-gpu/potluck/netmesh"
)

// Removing a member, as the owner:
//
//  1. sign a removal that names the member and carries the network's next
//     token sealed to each remaining member (see Removal);
//  2. publish it on the network, and move to the next token at once;
//  3. keep the old network up as a retired network that admits only the
//     members still to move and hands them the removal, until all have
//     moved (see Handoff).
//
// Every member that receives the removal does the same from step 2 (see
// Removal.Verdict). A member that was offline meets a retired network when
// it comes back on the old token, and moves then. The removed machine is
// refused everywhere.

// OwnerID is the peer id an owner key stands for; empty for a key that
// stands for none.
func OwnerID(key crypto.PrivKey) string {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return ""
	}
	return id.String()
}

// A Plan is a removal the owner signed, ready to publish.
type Plan struct {
	Signed  []byte  // the signed removal, to publish
	Removal Removal // what it says
	Next    string  // the network's next token
	// NextFingerprint names the next token where a person reads it.
	NextFingerprint string
	Removed         Ref
	Moving          []Ref // members given the next token
	Skipped         []Ref // members that could not be (they announced no key)
}

// inputError is a removal the owner asked for that cannot be: the
// client's mistake.
type inputError struct{ value, msg string }

func (e *inputError) Error() string {
	if e.value == "" {
		return "peer: " + e.msg
	}
	return fmt.Sprintf("peer %q: %s", e.value, e.msg)
}

// InvalidInput marks the error as the client's (HTTP 400).
func (e *inputError) InvalidInput() bool { return true }

// Remove plans the removal of the member who (a name or peer id) from the
// network of tok, as the owner self. ownerKey loads the owner key this
// computer holds; it is asked only for a network that has an owner, and a
// missing key (fs.ErrNotExist) means this computer is not the owner.
// addrs are self's addresses, which the removal gives the members as
// where to find the owner on the next network: it listens on the ports
// the old one has now.
func (r *Roll) Remove(tok netmesh.Token, self, who string, addrs []string, ownerKey func() (crypto.PrivKey, error), now time.Time) (Plan, error) {
	if tok.Owner() == "" {
		return Plan{}, &inputError{msg: ErrNoOwner.Error()}
	}
	key, err := ownerKey()
	if errors.Is(err, fs.ErrNotExist) || (err == nil && OwnerID(key) != tok.Owner()) {
		return Plan{}, &NotOwnerError{Owner: tok.Owner()}
	}
	if err != nil {
		return Plan{}, err
	}
	m, err := r.Find(who)
	if err != nil {
		return Plan{}, err
	}
	switch {
	case m.PeerID == self:
		return Plan{}, &inputError{value: who, msg: "that is this computer, the network's owner: it cannot remove itself"}
	case m.IsRemoved():
		return Plan{}, &inputError{value: who, msg: "was removed already"}
	}
	next, err := tok.Rotate()
	if err != nil {
		return Plan{}, err
	}
	removed := Ref{PeerID: m.PeerID, Name: m.Name}
	var recipients []Recipient
	for _, x := range r.List() {
		if !x.IsRemoved() && x.PeerID != self && x.PeerID != m.PeerID {
			recipients = append(recipients, Recipient{Ref: Ref{PeerID: x.PeerID, Name: x.Name}, SealKey: x.SealKey})
		}
	}
	signed, rm, skipped, err := NewRemoval(key, tok, next, addrs, []Ref{removed}, recipients, now)
	if err != nil {
		return Plan{}, err
	}
	nextToken, err := next.Encode()
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Signed: signed, Removal: rm, Next: nextToken, NextFingerprint: next.Fingerprint(), Removed: removed, Skipped: skipped}
	for _, x := range recipients {
		if _, ok := rm.Grants[x.PeerID]; ok {
			p.Moving = append(p.Moving, x.Ref)
		}
	}
	return p, nil
}

// An Action is what a removal received means for this computer.
type Action int

// Actions of a received removal. Every one of them refuses the removed
// members on the network the removal came from.
const (
	// Stale: the removal came again on a network this computer already
	// left; refusing the removed is all there is to do.
	Stale Action = iota
	// RemovedHere: the owner removed this computer.
	RemovedHere
	// Move: move to the next token (Verdict.Grant).
	Move
	// LeftBehind: the network moved without giving this computer the next
	// token; only a new invite brings it back.
	LeftBehind
	// Unreadable: the next token was there but could not be opened
	// (Verdict.Err says why).
	Unreadable
)

// A Verdict is what a received removal means for this computer.
type Verdict struct {
	Action Action
	Grant  Grant // for Move
	Err    error // for Unreadable
}

// Warning is what a person reads about the verdict; empty for the
// verdicts that need none.
func (v Verdict) Warning(r Removal) string {
	switch v.Action {
	case LeftBehind:
		return fmt.Sprintf("the network's owner removed %s and moved the network to a new token, but did not give it to this computer: ask the owner for a new invite token", RefNames(r.Removed))
	case Unreadable:
		return "the network moved to a new token that this computer could not open: " + v.Err.Error()
	}
	return ""
}

// An Opener opens what was sealed to one member: netmesh.Node.
type Opener interface {
	ID() string
	OpenSealed(context, ciphertext []byte) ([]byte, error)
}

var _ Opener = (*netmesh.Node)(nil)

// Verdict says what r, opened on a network (see OpenRemoval), means for
// the member self. current is whether that network is still the one this
// computer is on.
func (r Removal) Verdict(self Opener, current bool) Verdict {
	if !current {
		return Verdict{Action: Stale}
	}
	id := self.ID()
	if r.Names(id) {
		return Verdict{Action: RemovedHere}
	}
	g, ok, err := r.OpenGrant(id, self.OpenSealed)
	if err == nil && ok {
		if nt, perr := netmesh.ParseToken(g.Token); perr != nil || nt.Owner() != r.Owner {
			err = errors.New("the new token names another owner")
		}
	}
	switch {
	case !ok:
		return Verdict{Action: LeftBehind}
	case err != nil:
		return Verdict{Action: Unreadable, Err: err}
	}
	return Verdict{Action: Move, Grant: g}
}

// Movers are the members r gives the next token, but for self: those a
// handoff waits for.
func (r Removal) Movers(self string) []string {
	var ids []string
	for id := range r.Grants {
		if id != self {
			ids = append(ids, id)
		}
	}
	return ids
}

// Applied remembers the removals this node carried out: gossip delivers a
// removal more than once, and a retired network hands it out again and
// again, but it is carried out once.
type Applied struct {
	mu  sync.Mutex
	ids map[string]bool
}

// Has says whether the signed removal was carried out.
func (a *Applied) Has(signed []byte) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ids[ID(signed)]
}

// Add notes the signed removal as carried out; it reports whether it was
// news.
func (a *Applied) Add(signed []byte) (first bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id := ID(signed)
	if a.ids[id] {
		return false
	}
	if a.ids == nil {
		a.ids = map[string]bool{}
	}
	a.ids[id] = true
	return true
}

// RefNames lists members by name, or by peer id for one with no name.
func RefNames(refs []Ref) string {
	var names []string
	for _, r := range refs {
		if r.Name != "" {
			names = append(names, r.Name)
		} else {
			names = append(names, r.PeerID)
		}
	}
	return strings.Join(names, ", ")
}
