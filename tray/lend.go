package tray

import (
	"context"
	"slices"

	"fyne.io/fyne/v2"

	"github.com/potluck-gpu/potluck/nodestate"
)

const (
	labelLendTo    = "Lend to"
	labelLendAll   = "Every member"
	labelLendWhy   = "Whose models may be split onto this computer's GPU"
	labelLendNoOne = "(no other member yet)"
)

// fillLendTo lists under "Lend to" every member, and the members this
// computer lends to checked: the node enforces it where its shard worker
// takes streams. The first line says what the choice is for.
func (u *ui) fillLendTo() {
	chosen := u.status.LendTo
	items := []*fyne.MenuItem{
		{Label: labelLendWhy, Disabled: true},
		fyne.NewMenuItemSeparator(),
		{Label: labelLendAll, Checked: len(chosen) == 0, Action: func() { u.setLendTo(nil) }},
	}
	var names []string
	for _, p := range u.peers {
		if p.Name != "" && !slices.Contains(names, p.Name) {
			names = append(names, p.Name)
		}
	}
	for _, who := range chosen { // chosen, but not online now
		if !slices.Contains(names, who) && !slices.ContainsFunc(u.peers, func(p nodestate.Peer) bool { return p.ID == who }) {
			names = append(names, who)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		items = append(items, &fyne.MenuItem{Label: name, Checked: slices.Contains(chosen, name), Action: func() { u.toggleLendTo(name) }})
	}
	if len(names) == 0 {
		items = append(items, &fyne.MenuItem{Label: labelLendNoOne, Disabled: true})
	}
	u.items.lend.ChildMenu.Items = items
}

// toggleLendTo adds a member to those lent to, or takes one out; from
// every member, choosing one means that member only. Taking out the last
// one means every member again.
func (u *ui) toggleLendTo(name string) {
	cur := u.status.LendTo
	var choice []string
	if slices.Contains(cur, name) {
		choice = slices.DeleteFunc(slices.Clone(cur), func(s string) bool { return s == name })
	} else {
		choice = append(slices.Clone(cur), name)
	}
	u.setLendTo(choice)
}

func (u *ui) setLendTo(choice []string) {
	u.background("Could not change whom this computer lends to", func(ctx context.Context) error { return u.ctrl.SetLendTo(ctx, choice) })
}
