package members

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"

	"github.com/potluck-gpu/potluck/netmesh"
)

// A Removal is the owner's signed decision to drop members from a network.
// It names the network by the fingerprint of the token it leaves behind, so
// it cannot be replayed on another. It carries the network's next token,
// sealed to each remaining member alone: the removed machines, which hold
// the old token and can read the removal, cannot open the new one.
type Removal struct {
	Network string    `json:"network"` // fingerprint of the token being left
	Owner   string    `json:"owner"`   // peer ID of the owner key that signed it
	Removed []Ref     `json:"removed"`
	Issued  time.Time `json:"issued"` // the owner's clock: shown, never compared
	// Grants holds, per remaining member's peer ID, a Grant sealed to it.
	Grants map[string][]byte `json:"grants"`
}

// Ref names a member.
type Ref struct {
	PeerID string `json:"peer_id"`
	Name   string `json:"name"`
}

// Grant is what a remaining member needs to move to the new token.
type Grant struct {
	Token string `json:"token"`
	// Bootstrap are the owner's addresses on the new network.
	Bootstrap []string `json:"bootstrap,omitempty"`
}

// Signed envelope parameters of a removal.
const signDomain = "potluck-members"

var codecRemoval = []byte("/potluck/removal/1")

// maxRemoval bounds a signed removal before it is parsed.
const maxRemoval = 256 << 10

type removalRecord struct{ payload []byte }

var _ record.Record = (*removalRecord)(nil)

func (r *removalRecord) Domain() string                 { return signDomain }
func (r *removalRecord) Codec() []byte                  { return codecRemoval }
func (r *removalRecord) MarshalRecord() ([]byte, error) { return r.payload, nil }
func (r *removalRecord) UnmarshalRecord(b []byte) error { r.payload = b; return nil }

// grantContext binds a sealed grant to its network and recipient.
func grantContext(network, recipient string) []byte {
	return []byte("potluck grant v1\n" + network + "\n" + recipient)
}

// Recipient is a remaining member to give the new token to.
type Recipient struct {
	Ref
	SealKey string
}

// NewRemoval drops removed from the network of tok and moves recipients
// to next. owner must be tok's owner key. It returns the signed removal, to
// publish, and the members that could not be given the new token.
func NewRemoval(owner crypto.PrivKey, tok netmesh.Token, next netmesh.Token, bootstrap []string, removed []Ref, recipients []Recipient, now time.Time) (signed []byte, r Removal, skipped []Ref, err error) {
	ownerID, err := peer.IDFromPrivateKey(owner)
	if err != nil {
		return nil, Removal{}, nil, err
	}
	if tok.Owner() == "" {
		return nil, Removal{}, nil, ErrNoOwner
	}
	if ownerID.String() != tok.Owner() {
		return nil, Removal{}, nil, &NotOwnerError{Owner: tok.Owner()}
	}
	if len(removed) == 0 {
		return nil, Removal{}, nil, errors.New("nobody to remove")
	}
	nextEnc, err := next.Encode()
	if err != nil {
		return nil, Removal{}, nil, err
	}
	grant, err := json.Marshal(Grant{Token: nextEnc, Bootstrap: bootstrap})
	if err != nil {
		return nil, Removal{}, nil, err
	}
	r = Removal{
		Network: tok.Fingerprint(), Owner: tok.Owner(), Removed: removed,
		Issued: now.UTC().Truncate(time.Second), Grants: map[string][]byte{},
	}
	for _, m := range recipients {
		if m.PeerID == ownerID.String() || slices.ContainsFunc(removed, func(x Ref) bool { return x.PeerID == m.PeerID }) {
			continue
		}
		sealed, err := netmesh.SealTo(netmesh.NodeInfo{Name: m.Name, SealKey: m.SealKey}, grantContext(r.Network, m.PeerID), grant)
		if err != nil {
			skipped = append(skipped, m.Ref)
			continue
		}
		r.Grants[m.PeerID] = sealed
	}
	payload, err := json.Marshal(r)
	if err != nil {
		return nil, Removal{}, nil, err
	}
	if len(payload) > maxRemoval/2 {
		return nil, Removal{}, nil, fmt.Errorf("the network has too many members (%d) to rotate its token in one message", len(r.Grants))
	}
	env, err := record.Seal(&removalRecord{payload: payload}, owner)
	if err != nil {
		return nil, Removal{}, nil, err
	}
	signed, err = env.Marshal()
	if err != nil {
		return nil, Removal{}, nil, err
	}
	return signed, r, skipped, nil
}

// Errors of removals.
var (
	// ErrNoOwner: the network's token names no owner.
	ErrNoOwner = errors.New("only a network Potluck created can remove members: this network's token names no owner " +
		"(it was made by EdgeVPN, LocalAI or an older Potluck). To leave someone out, create a new network " +
		"(`potluck token new`) and invite everyone else to it")
	// ErrNotRemoval: the data is not a signed removal.
	ErrNotRemoval = errors.New("not a signed member removal")
)

// NotOwnerError: this computer does not hold the network's owner key.
type NotOwnerError struct{ Owner string }

func (e *NotOwnerError) Error() string {
	return "only the computer that created this network can remove members (the owner is " + e.Owner +
		"; this computer does not hold its owner key)"
}

// InvalidInput marks the error as the client's (HTTP 400).
func (e *NotOwnerError) InvalidInput() bool { return true }

// OpenRemoval checks a signed removal for the network of tok: it must be
// signed by tok's owner and name tok's network. Anything else is an error
// and must change nothing.
func OpenRemoval(signed []byte, tok netmesh.Token) (Removal, error) {
	if len(signed) > maxRemoval || tok.Owner() == "" {
		return Removal{}, ErrNotRemoval
	}
	rec := &removalRecord{}
	env, err := record.ConsumeTypedEnvelope(signed, rec)
	if err != nil {
		return Removal{}, ErrNotRemoval
	}
	signer, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil || signer.String() != tok.Owner() {
		return Removal{}, ErrNotRemoval
	}
	var r Removal
	if err := json.Unmarshal(rec.payload, &r); err != nil {
		return Removal{}, ErrNotRemoval
	}
	if r.Owner != tok.Owner() || r.Network != tok.Fingerprint() || len(r.Removed) == 0 {
		return Removal{}, ErrNotRemoval
	}
	return r, nil
}

// Names says whether the removal drops the member with this peer id.
func (r Removal) Names(id string) bool {
	return slices.ContainsFunc(r.Removed, func(x Ref) bool { return x.PeerID == id })
}

// RemovedIDs lists the peer ids the removal drops.
func (r Removal) RemovedIDs() []string {
	ids := make([]string, len(r.Removed))
	for i, x := range r.Removed {
		ids[i] = x.PeerID
	}
	return ids
}

// OpenGrant opens the grant sealed to the member self, with open (the
// member's netmesh.Node.OpenSealed). ok is false when the removal holds no
// grant for self.
func (r Removal) OpenGrant(self string, open func(context, ciphertext []byte) ([]byte, error)) (g Grant, ok bool, err error) {
	sealed, found := r.Grants[self]
	if !found {
		return Grant{}, false, nil
	}
	plain, err := open(grantContext(r.Network, self), sealed)
	if err != nil {
		return Grant{}, true, fmt.Errorf("open the new token: %w", err)
	}
	if err := json.Unmarshal(plain, &g); err != nil {
		return Grant{}, true, fmt.Errorf("open the new token: %w", err)
	}
	if _, err := netmesh.ParseToken(g.Token); err != nil {
		return Grant{}, true, fmt.Errorf("the new token: %w", err)
	}
	return g, true, nil
}

// ID is a short digest that tells removals apart.
func ID(signed []byte) string {
	sum := sha256.Sum256(signed)
	return hex.EncodeToString(sum[:8])
}
