package app

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/potluck-gpu/potluck/ledger"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/settings"
)

// The pool's accounts (package ledger): the model proxy records every
// request this node's model serves, with the node that asked; the node
// publishes its totals to the network and keeps what the others publish.

const (
	ledgerPublishEvery = 2 * time.Second // at most, when the totals changed
	ledgerRepublish    = 2 * time.Minute // anyway, for members that came later
)

// keepLedger saves and publishes the ledger until ctx ends.
func (n *Node) keepLedger(ctx context.Context) error {
	if n.ledger == nil {
		return nil
	}
	t := time.NewTicker(ledgerPublishEvery)
	defer t.Stop()
	lastSave, lastPub := time.Now(), time.Time{}
	for {
		select {
		case <-ctx.Done():
			if err := n.ledger.Save(); err != nil {
				n.log.Warn("cannot save the ledger", "err", err)
			}
			return nil
		case <-t.C:
		}
		if time.Since(lastSave) >= saveRetry { // when changed
			n.savedAgain("ledger-save", n.ledger.Save())
			lastSave = time.Now()
		}
		pub, changed := n.ledger.Publication()
		if !changed && time.Since(lastPub) < ledgerRepublish {
			continue
		}
		s := n.currentMesh()
		if s == nil || (len(pub.Days) == 0 && len(pub.Before) == 0) {
			continue
		}
		raw, err := json.Marshal(pub)
		if err != nil {
			continue
		}
		if err := s.node.Notify(raw); err != nil {
			n.log.Debug("publish the ledger", "err", err)
			continue
		}
		lastPub = time.Now()
	}
}

// heardLedger takes a member's published totals; false if the payload is
// not one.
func (n *Node) heardLedger(from string, payload []byte) bool {
	pub, ok := ledger.Parse(payload)
	if !ok {
		return false
	}
	if n.ledger != nil {
		n.ledger.Heard(from, pub)
	}
	return true
}

// Usage implements tray.Controller: the accounts, what this machine gave
// and used.
func (n *Node) Usage() nodestate.Usage {
	u := nodestate.Usage{ShareLimit: n.shareLimit(), Peers: []nodestate.PeerUsage{}, Pairs: []nodestate.UsagePair{}}
	s := n.currentMesh()
	if n.ledger == nil || s == nil {
		return u
	}
	self := s.node.ID()
	u.Self = self
	names, systems := map[string]string{}, map[string]string{}
	for _, p := range s.node.Peers() {
		names[p.PeerID] = p.Name
		systems[p.PeerID] = n.peerView(p, time.Now()).OS
	}
	byPeer := map[string]*nodestate.PeerUsage{}
	get := func(id string) *nodestate.PeerUsage {
		if byPeer[id] == nil {
			byPeer[id] = &nodestate.PeerUsage{ID: id, Name: names[id], OS: systems[id]}
		}
		return byPeer[id]
	}
	for _, w := range []ledger.Window{ledger.Today, ledger.Week, ledger.All} {
		for p, t := range n.ledger.Matrix(self, w) {
			if w == ledger.All {
				u.Pairs = append(u.Pairs, nodestate.UsagePair{Server: p.Server, Asker: p.Asker, Requests: t.Requests, TokensIn: t.TokensIn, TokensOut: t.TokensOut})
			}
			switch {
			case p.Server == self && p.Asker != self:
				addWindow(&get(p.Asker).Gave, w, t.Tokens())
				addWindow(&u.Gave, w, t.Tokens())
			case p.Asker == self && p.Server != self:
				addWindow(&get(p.Server).Used, w, t.Tokens())
				addWindow(&u.Used, w, t.Tokens())
			}
		}
	}
	for _, p := range byPeer {
		u.Peers = append(u.Peers, *p)
	}
	slices.SortFunc(u.Peers, func(a, b nodestate.PeerUsage) int { return strings.Compare(a.Name+a.ID, b.Name+b.ID) })
	slices.SortFunc(u.Pairs, func(a, b nodestate.UsagePair) int { return strings.Compare(a.Server+a.Asker, b.Server+b.Asker) })
	return u
}

// shareLimit is the daily tokens each peer may use of this node's model:
// --share-limit, or else what was chosen in a user interface.
func (n *Node) shareLimit() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.shareLimitLocked()
}

func (n *Node) shareLimitLocked() uint64 {
	if n.cfg.ShareLimit > 0 {
		return n.cfg.ShareLimit
	}
	return n.settings.Get().ShareLimit
}

// SetShareLimit implements tray.Controller: the daily tokens each peer may use
// of this node's model; 0 lifts the limit. It holds at once.
func (n *Node) SetShareLimit(ctx context.Context, tokens uint64) error {
	if n.cfg.ShareLimit > 0 {
		return &nodestate.InputError{Field: "share limit", Msg: "chosen with --share-limit (or POTLUCK_SHARE_LIMIT) when Potluck started: restart without it to choose here"}
	}
	n.opMu.Lock()
	defer n.opMu.Unlock()
	return n.settings.Modify(func(s *settings.Settings) { s.ShareLimit = tokens })
}

// addWindow counts v in w's window win.
func addWindow(w *nodestate.UsageWindows, win ledger.Window, v float64) {
	switch win {
	case ledger.Today:
		w.Today += v
	case ledger.Week:
		w.Week += v
	default:
		w.All += v
	}
}
