package app

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/potluck-gpu/potluck/members"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/settings"
)

// Lending: the members a shard worker serves. By default every member of
// the network may split a model onto this machine; the owner of the
// machine may name the ones who may instead. The gate in front of the
// worker holds streams from anyone else (gate.go), and the worker
// announces whom it lends to, so that other heads leave it out of their
// plans rather than fail to load.

// LendAll is the word for every member, in --lend-to and the node API.
const LendAll = "all"

// ParseLendTo reads --lend-to: "all" (or nothing) is every member, nil;
// otherwise member names or peer ids, separated by commas.
func ParseLendTo(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, LendAll) {
		return nil, nil
	}
	var out []string
	for _, who := range strings.Split(s, ",") {
		who = strings.TrimSpace(who)
		switch {
		case who == "":
			return nil, fmt.Errorf("%q names an empty member: give names or peer ids separated by commas, or all", s)
		case strings.EqualFold(who, LendAll):
			return nil, fmt.Errorf("%q: all means every member, so it stands alone", s)
		}
		if !slices.Contains(out, who) {
			out = append(out, who)
		}
	}
	return out, nil
}

// lendToLocked is whom this machine lends to (nil: every member): what
// --lend-to said, or else what was chosen in a user interface.
func (n *Node) lendToLocked() []string {
	if n.cfg.LendTo != "" {
		l, _ := ParseLendTo(n.cfg.LendTo) // checked by Config.Check
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
	list, err := ParseLendTo(strings.Join(who, ","))
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
	return slices.Contains(n.lentIDs(list), id)
}

// lentIDs are the peer ids of the members list names. A member is named
// by its peer id, or by its name: the member first seen under that name,
// so a member that announces another's name later does not take its
// place. A name no member has yet names nobody until one joins with it.
func (n *Node) lentIDs(list []string) []string {
	var ids []string
	known := n.roll.List()
	slices.SortStableFunc(known, func(a, b members.Member) int { return a.FirstSeen.Compare(b.FirstSeen) })
	for _, who := range list {
		for _, m := range known {
			if m.IsRemoved() {
				continue
			}
			if m.PeerID == who || m.Name == who {
				ids = append(ids, m.PeerID)
				break
			}
		}
	}
	return ids
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
	return append([]string{self}, n.lentIDs(list)...)
}

// relend announces again whom this machine lends to when a member that
// joined, or took a name, changes the list.
func (n *Node) relend(s *meshSession) {
	now := n.lendAnnouncement(s.node.ID())
	n.mu.Lock()
	worker := n.shareLocked() == nodestate.ShareWorker
	n.mu.Unlock()
	if worker && !slices.Equal(now, s.node.Info().LendTo) {
		n.publishInfo()
	}
}
