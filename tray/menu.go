package tray

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/widget"

	"github.com/potluck-gpu/potluck/ledger"
	"github.com/potluck-gpu/potluck/nodestate"
)

// Menu labels; tests and the end-to-end test find items by these.
const (
	labelShare     = "Share this computer"
	labelShareAs   = "Share as"
	labelWorker    = "Shard worker"
	labelServer    = "Full server"
	labelMemory    = "Memory to share…"
	labelDevices   = "Devices"
	labelAutomatic = "Automatic (the fastest plan)"
	labelServe     = "Serve a model…"
	labelGet       = "Get a model…"
	labelJoin      = "Join a network…"
	labelInvite    = "Copy invite token"
	labelAPI       = "Copy API address"
	labelDashboard = "Open dashboard"
	labelBrowser   = "Open in browser"
	labelLogs      = "Open logs folder"
	labelLogin     = "Start at login"
	labelQuit      = "Quit"
)

type menuItems struct {
	status, share, worker, server, memory, devices, lend, serve, get, join, invite, api, dashboard, browser, logs, login, quit *fyne.MenuItem
}

func (u *ui) buildMenu() *fyne.Menu {
	it := &u.items
	it.status = &fyne.MenuItem{Label: "Starting…", Disabled: true}
	it.share = fyne.NewMenuItem(labelShare, func() { u.setSharing(!it.share.Checked) })
	it.worker = fyne.NewMenuItem(labelWorker, func() { u.setShareAs(nodestate.ShareWorker) })
	it.server = fyne.NewMenuItem(labelServer, func() { u.setShareAs(nodestate.ShareServer) })
	shareAs := fyne.NewMenuItem(labelShareAs, nil)
	shareAs.ChildMenu = fyne.NewMenu("", it.worker, it.server)
	it.memory = fyne.NewMenuItem(labelMemory, u.showMemory)
	it.devices = fyne.NewMenuItem(labelDevices, nil)
	it.devices.ChildMenu = fyne.NewMenu("")
	it.lend = fyne.NewMenuItem(labelLendTo, nil)
	it.lend.ChildMenu = fyne.NewMenu("")
	it.serve = fyne.NewMenuItem(labelServe, func() { u.showModels("") })
	it.get = fyne.NewMenuItem(labelGet, func() { u.showModels("") })
	it.join = fyne.NewMenuItem(labelJoin, u.showJoin)
	it.invite = fyne.NewMenuItem(labelInvite, u.copyInvite)
	it.api = fyne.NewMenuItem(labelAPI, u.copyAPI)
	it.dashboard = fyne.NewMenuItem(labelDashboard, u.showDashboard)
	it.browser = fyne.NewMenuItem(labelBrowser, u.openBrowser)
	it.logs = fyne.NewMenuItem(labelLogs, u.openLogs)
	it.login = fyne.NewMenuItem(labelLogin, u.toggleLogin)
	it.quit = fyne.NewMenuItem(labelQuit, func() { u.quit() })
	it.quit.IsQuit = true
	m := fyne.NewMenu("Potluck",
		it.status,
		fyne.NewMenuItemSeparator(),
		it.share, shareAs, it.lend, it.memory, it.devices,
		fyne.NewMenuItemSeparator(),
		it.serve, it.get,
		fyne.NewMenuItemSeparator(),
		it.join, it.invite, it.api, it.dashboard, it.browser, it.logs,
		fyne.NewMenuItemSeparator(),
		it.login,
		fyne.NewMenuItemSeparator(),
		it.quit,
	)
	u.fillMenu()
	return m
}

// fillMenu sets the items from the state and reports whether any changed.
// Fyne thread.
func (u *ui) fillMenu() bool {
	it := &u.items
	before := menuState(it)
	it.status.Label = statusLine(u.status)
	it.share.Checked = sharing(u.status)
	mode := shareAs(u.status)
	if sharing(u.status) {
		mode = u.status.Share
	}
	it.worker.Checked = mode == nodestate.ShareWorker
	it.server.Checked = mode == nodestate.ShareServer
	it.invite.Disabled = !u.status.InMesh
	it.api.Disabled = u.status.API == ""
	it.login.Disabled = u.login == nil
	it.login.Checked = u.login != nil && u.login.Enabled()
	u.fillDevices()
	u.fillLendTo()
	return menuState(it) != before
}

// fillDevices lists llama.cpp's devices under Devices: Automatic, or the
// ones chosen.
func (u *ui) fillDevices() {
	auto := len(u.status.DeviceChoice) == 0
	items := []*fyne.MenuItem{{Label: labelAutomatic, Checked: auto, Action: func() { u.setDevices(nil) }}}
	for _, d := range u.status.Devices {
		label := d.Name
		if d.Description != "" && d.Backend != "CPU" {
			label += " · " + d.Description
		}
		if d.TotalBytes > 0 {
			label += " · " + formatBytes(d.TotalBytes)
		}
		name := d.Name
		items = append(items, &fyne.MenuItem{Label: label, Checked: !d.Unused && !auto, Action: func() { u.toggleDevice(name) }})
	}
	u.items.devices.ChildMenu.Items = items
}

// toggleDevice adds a device to the choice or takes it out; from
// Automatic, choosing one device means that device (and the CPU).
func (u *ui) toggleDevice(name string) {
	var choice []string
	switch cur := u.status.DeviceChoice; {
	case len(cur) == 0:
		choice = []string{name}
		if name != "CPU" {
			choice = append(choice, "CPU")
		}
	case slices.Contains(cur, name):
		choice = slices.DeleteFunc(slices.Clone(cur), func(s string) bool { return s == name })
	default:
		choice = append(slices.Clone(cur), name)
	}
	u.setDevices(choice)
}

func (u *ui) setDevices(choice []string) {
	u.background("Could not change the devices used", func(ctx context.Context) error { return u.ctrl.SetDevices(ctx, choice) })
}

// menuState is a fingerprint of what the menu shows.
func menuState(it *menuItems) string {
	var b strings.Builder
	items := []*fyne.MenuItem{it.status, it.share, it.worker, it.server, it.invite, it.api, it.login}
	items = append(items, it.devices.ChildMenu.Items...)
	items = append(items, it.lend.ChildMenu.Items...)
	for _, m := range items {
		b.WriteString(m.Label)
		b.WriteString(strconv.FormatBool(m.Checked))
		b.WriteString(strconv.FormatBool(m.Disabled))
	}
	return b.String()
}

// updateMenu refreshes the tray menu when what it shows changed; a refresh
// rebuilds the whole D-Bus menu, so it is not done for nothing.
func (u *ui) updateMenu() {
	if u.fillMenu() && u.tray != nil {
		u.menu.Refresh()
	}
}

// setSharing turns sharing on (in the chosen mode) or off.
func (u *ui) setSharing(on bool) {
	mode := nodestate.ShareOff
	if on {
		mode = shareAs(u.status)
	}
	if mode == nodestate.ShareServer && u.status.Model == nil {
		u.showModels(nodestate.ShareServer) // a full server needs a model first
		return
	}
	u.items.share.Checked = on
	if u.tray != nil {
		u.menu.Refresh()
	}
	mem := u.status.ShareMemory
	what := "Could not stop sharing"
	if on {
		what = "Could not share this computer"
	}
	u.background(what, func(ctx context.Context) error { return u.ctrl.Share(ctx, mode, mem) })
}

// setShareAs chooses the mode; a computer already shared switches to it.
func (u *ui) setShareAs(mode nodestate.ShareMode) {
	if sharing(u.status) && u.status.Share != mode && mode == nodestate.ShareServer && u.status.Model == nil {
		u.showModels(nodestate.ShareServer)
		return
	}
	u.status.ShareAs = mode // shown at once; the node's status follows
	u.updateMenu()
	u.background("Could not change how this computer is shared", func(ctx context.Context) error {
		return u.ctrl.SetShareAs(ctx, mode)
	})
}

func (u *ui) copyInvite() {
	tok, err := u.ctrl.InviteToken()
	if err != nil {
		u.notify("No invite token", "Share this computer or join a network first.")
		return
	}
	u.app.Clipboard().SetContent(tok)
	u.notify("Invite token copied", "Send it to a friend: they paste it in “Join a network…”.")
}

func (u *ui) copyAPI() {
	if u.status.API == "" {
		return
	}
	u.app.Clipboard().SetContent(u.status.API)
	u.notify("API address copied", u.status.API)
}

func (u *ui) toggleLogin() {
	if u.login == nil {
		return
	}
	on := !u.login.Enabled()
	if err := u.login.SetEnabled(on); err != nil {
		u.log.Warn("start at login", "err", err)
		u.notify("Could not change “Start at login”", err.Error())
	}
	u.updateMenu()
}

// memoryWindow is "Memory to share…": how much this computer offers.
type memoryWindow struct {
	win     fyne.Window
	entry   *widget.Entry
	limit   *widget.Entry // tokens a day per friend
	problem *widget.Label
	save    *widget.Button
}

// showMemory opens the memory window. Fyne thread.
func (u *ui) showMemory() {
	if u.memory == nil {
		u.memory = newMemoryWindow(u)
	}
	u.memory.win.Show()
	u.memory.win.RequestFocus()
}

func newMemoryWindow(u *ui) *memoryWindow {
	m := &memoryWindow{win: u.app.NewWindow("Memory to share"), entry: widget.NewEntry(), limit: widget.NewEntry(), problem: widget.NewLabel("")}
	m.entry.SetPlaceHolder("automatic")
	if mem := u.status.ShareMemory; mem > 0 {
		m.entry.SetText(strconv.FormatFloat(float64(mem)/(1<<30), 'f', -1, 64))
	}
	m.limit.SetPlaceHolder("no limit")
	if u.status.ShareLimit > 0 {
		m.limit.SetText(strings.ReplaceAll(ledger.FormatTokens(float64(u.status.ShareLimit)), " ", ""))
	}
	m.problem.Wrapping = fyne.TextWrapWord
	m.problem.Importance = widget.DangerImportance
	m.problem.Hide()
	m.save = &widget.Button{Text: "Save", Importance: widget.HighImportance, OnTapped: func() {
		mem, err := parseMemory(m.entry.Text)
		if err != nil {
			m.problem.SetText(err.Error())
			m.problem.Show()
			return
		}
		limit, err := parseLimit(m.limit.Text)
		if err != nil {
			m.problem.SetText(err.Error())
			m.problem.Show()
			return
		}
		if mem != u.status.ShareMemory {
			u.setMemory(mem)
		}
		if limit != u.status.ShareLimit {
			u.background("Could not change the daily limit", func(ctx context.Context) error {
				return u.ctrl.SetShareLimit(ctx, limit)
			})
		}
		m.win.Close()
	}}
	m.entry.OnSubmitted = func(string) { m.save.OnTapped() }
	m.limit.OnSubmitted = func(string) { m.save.OnTapped() }
	hint := widget.NewLabel("How much of this computer's memory (GPU first, then RAM) the pool may use, in GB. Leave it empty to let Potluck decide.")
	hint.Wrapping = fyne.TextWrapWord
	limitHint := widget.NewLabel("How many tokens a day each friend may use of the model this computer serves, such as 500k or 2M. Your own requests are never limited.")
	limitHint.Wrapping = fyne.TextWrapWord
	m.win.SetContent(container.NewVBox(
		hint,
		container.NewBorder(nil, nil, nil, widget.NewLabel("GB"), m.entry),
		limitHint,
		container.NewBorder(nil, nil, nil, widget.NewLabel("tokens a day"), m.limit),
		m.problem,
		container.NewHBox(layout.NewSpacer(), widget.NewButton("Cancel", m.win.Close), m.save),
	))
	m.win.SetOnClosed(func() { u.memory = nil })
	m.win.Resize(fyne.NewSize(420, 300))
	return m
}

// setMemory has the node keep how much to offer; a shared computer offers
// it at once.
func (u *ui) setMemory(mem uint64) {
	mode := nodestate.ShareOff
	if sharing(u.status) {
		mode = u.status.Share
	}
	u.status.ShareMemory = mem // shown at once; the node's status follows
	u.background("Could not change the memory shared", func(ctx context.Context) error {
		return u.ctrl.Share(ctx, mode, mem)
	})
}

// shareAs is the mode sharing turns on in: worker unless the node says
// server.
func shareAs(st nodestate.Status) nodestate.ShareMode {
	if st.ShareAs == nodestate.ShareServer {
		return nodestate.ShareServer
	}
	return nodestate.ShareWorker
}

// parseMemory reads a size in GB; empty or 0 means automatic.
func parseMemory(s string) (uint64, error) {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(strings.ToUpper(s)), "GB"))
	if s == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(s, ",", "."), 64)
	if err != nil || f < 0 || f > 1<<20 {
		return 0, errMemory
	}
	return uint64(f * (1 << 30)), nil
}

var errMemory = errors.New("Write a number of gigabytes, such as 8 or 12.5, or leave it empty.")

// parseLimit reads a daily token limit; empty or 0 means none.
func parseLimit(s string) (uint64, error) {
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	n, err := ledger.ParseTokens(s)
	if err != nil {
		return 0, errLimit
	}
	return n, nil
}

var errLimit = errors.New("Write a number of tokens a day, such as 500k, 2M or 20000, or leave it empty for no limit.")
