package app

import (
	"context"
	"slices"
	"strings"

	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/settings"
	"github.com/potluck-gpu/potluck/worker"
)

// Lending: the members a shard worker serves (see package worker).

// lendToLocked is whom this machine lends to (nil: every member): what
// --lend-to said, or else what was chosen in a user interface.
func (n *Node) lendToLocked() []string {
	if n.cfg.LendTo != "" {
		l, _ := worker.ParseLendTo(n.cfg.LendTo) // checked by Config.Check
		return l
	}
	return n.settings.Get().LendTo
}

// SetLendTo implements tray.Controller: the members (names or peer ids) this
// machine's shard worker serves; none: every member. Streams from other
// members are held from then on.
func (n *Node) SetLendTo(ctx context.Context, who []string) error {
	if n.cfg.LendTo != "" {
		return &nodestate.InputError{Field: "lend to", Msg: "chosen with --lend-to (or POTLUCK_LEND_TO) when Potluck started: restart without it to choose here"}
	}
	list, err := worker.ParseLendTo(strings.Join(who, ","))
	if err != nil {
		return &nodestate.InputError{Field: "lend to", Msg: err.Error()}
	}
	n.opMu.Lock()
	defer n.opMu.Unlock()
	err = n.settings.Modify(func(s *settings.Settings) { s.LendTo = list })
	n.publishInfo()
	return err
}

// lendsTo says whether this machine lends to the member with peer id id.
func (n *Node) lendsTo(id string) bool {
	n.mu.Lock()
	list := n.lendToLocked()
	n.mu.Unlock()
	if len(list) == 0 {
		return true
	}
	return slices.Contains(n.roll.IDs(list), id)
}

// lendAnnouncement is the list a worker announces: the peer ids it lends
// to, itself among them, so that a list of none it knows yet still reads
// as a limit; nil when it lends to every member.
func (n *Node) lendAnnouncement(self string) []string {
	n.mu.Lock()
	list := n.lendToLocked()
	n.mu.Unlock()
	if len(list) == 0 {
		return nil
	}
	return append([]string{self}, n.roll.IDs(list)...)
}

// relend announces again whom this machine lends to when a member that
// joined, or took a name, changes the list.
func (n *Node) relend(s *meshSession) {
	now := n.lendAnnouncement(s.node.ID())
	n.mu.Lock()
	lending := n.shareLocked() == nodestate.ShareWorker
	n.mu.Unlock()
	if lending && !slices.Equal(now, s.node.Info().LendTo) {
		n.publishInfo()
	}
}
