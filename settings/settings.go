// Package settings owns the user's choices that outlive a restart, in
// settings.json in the data directory. A Store is their one owner: every
// change goes through Modify, which saves it durably and tells whoever
// subscribed.
package settings

import (
	"slices"

	"github.com/potluck-gpu/potluck/members"
	"github.com/potluck-gpu/potluck/nodestate"
)

// Settings are the user's choices that outlive a restart: the mesh joined
// and how this machine is shared. The file holds the invite token, so it is
// readable by the owner only.
type Settings struct {
	Token       string              `json:"token,omitempty"`
	Share       nodestate.ShareMode `json:"share,omitempty"`
	ShareMemory uint64              `json:"share_memory,omitempty"`
	// ShareAs is the mode sharing turns on in ("worker" or "server"),
	// kept while sharing is off; empty: worker.
	ShareAs nodestate.ShareMode `json:"share_as,omitempty"`
	// ShareLimit is the daily tokens each peer may use of this node's
	// model (see Config.ShareLimit); 0: no limit.
	ShareLimit uint64 `json:"share_limit,omitempty"`
	// LendTo are the members (names or peer ids) this machine's shard
	// worker serves; empty: every member.
	LendTo []string `json:"lend_to,omitempty"`
	// Model is the model chosen to serve (a library name, a path or a
	// reference) when none is given with --model.
	Model string `json:"model,omitempty"`
	// Devices are the devices chosen to serve and lend (see
	// Config.Devices); empty: every device that makes a plan faster.
	Devices []string `json:"devices,omitempty"`
	// Embeddings are the models (as named to serve them) that serve
	// embeddings too, chosen in a user interface.
	Embeddings []string `json:"embeddings,omitempty"`
	// Draft is the draft model chosen in a user interface (see
	// Config.Draft): "auto", "none", "ngram" or a model's name; empty: auto.
	Draft string `json:"draft,omitempty"`

	// PastTokens are the fingerprints of tokens the network moved away
	// from when its owner removed a member: a --token naming one of them
	// means Token.
	PastTokens []string `json:"past_tokens,omitempty"`
	// Handoffs are networks this node moved away from that still hand
	// the owner's removal to members that have not moved yet.
	Handoffs []members.SavedHandoff `json:"handoffs,omitempty"`
	// RemovedFrom is the fingerprint of the token of a network whose
	// owner removed this computer.
	RemovedFrom string `json:"removed_from,omitempty"`
}

// MaxPastTokens bounds Settings.PastTokens.
const MaxPastTokens = 16

// MoveTo moves the network to the token next, away from the token whose
// fingerprint is past: an invite of the old token then means the new one.
// The last MaxPastTokens are kept.
func (s *Settings) MoveTo(next, past string) {
	s.Token = next
	if !slices.Contains(s.PastTokens, past) {
		s.PastTokens = append(s.PastTokens, past)
		s.PastTokens = s.PastTokens[max(0, len(s.PastTokens)-MaxPastTokens):]
	}
}

// ShareMode is the share mode chosen: off when none was.
func (s Settings) ShareMode() nodestate.ShareMode {
	if s.Share == "" {
		return nodestate.ShareOff
	}
	return s.Share
}

// ShareAsMode is the mode sharing turns on in: worker unless server was
// chosen.
func (s Settings) ShareAsMode() nodestate.ShareMode {
	if s.ShareAs == nodestate.ShareServer {
		return nodestate.ShareServer
	}
	return nodestate.ShareWorker
}

// clone is a deep copy: a Modify never writes into a snapshot Get gave out.
func (s Settings) clone() Settings {
	c := s
	c.LendTo = slices.Clone(s.LendTo)
	c.Devices = slices.Clone(s.Devices)
	c.Embeddings = slices.Clone(s.Embeddings)
	c.PastTokens = slices.Clone(s.PastTokens)
	c.Handoffs = make([]members.SavedHandoff, len(s.Handoffs))
	for i, h := range s.Handoffs {
		h.Removal = slices.Clone(h.Removal)
		h.Pending = slices.Clone(h.Pending)
		c.Handoffs[i] = h
	}
	if s.Handoffs == nil {
		c.Handoffs = nil
	}
	return c
}
