package tray

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/potluck-gpu/potluck/ledger"
	"github.com/potluck-gpu/potluck/nodestate"
)

// dashLogLines and dashRequests bound what the dashboard lists.
const (
	dashLogLines = 30
	dashRequests = 12
)

// dashboard is the window that shows everything: this machine, the peers,
// who serves which model, recent requests, the log and the API address.
type dashboard struct {
	u        *ui
	win      fyne.Window
	headline *widget.Label
	api      *widget.Label
	machine  *widget.Label
	warnings *widget.Label
	peers    *fyne.Container
	routing  *widget.Label
	requests *fyne.Container
	members  *fyne.Container
	logs     *widget.Label
	body     *fyne.Container
	scroll   *container.Scroll

	lastPeers, lastRequests, lastMembers string
	usage                                *fyne.Container
	usageHead                            *widget.Label
	lastUsage                            string
}

// Column headings of the dashboard's tables.
var (
	usageColumns   = []string{"Peer", "You gave today", "this week", "all time", "You used today", "this week", "all time"}
	peerColumns    = []string{"Name", "Mode", "Memory", "Online", "Connection", "RTT", "Version", "Models"}
	requestColumns = []string{"Time", "Model", "Served by", "Status", "Took"}
	memberColumns  = []string{"Name", "Peer ID", "Status", "First seen", "Last seen"}
)

// showDashboard opens the dashboard, or brings it to the front. Fyne
// thread.
func (u *ui) showDashboard() {
	if u.dash == nil {
		u.dash = newDashboard(u)
	}
	u.dashForHost = false // asked for: it stays when a tray host appears
	u.dashVisible.Store(true)
	u.dash.win.Show()
	u.dash.win.RequestFocus()
	u.requestRefresh()
}

// trayShown follows the tray host: once it shows the icon, a dashboard
// that opened only for lack of one closes. Fyne thread.
func (u *ui) trayShown(shown bool) {
	u.iconShown = shown
	if !shown || !u.dashForHost {
		return
	}
	u.dashForHost = false
	if u.dash != nil && u.dashVisible.Load() {
		u.dashVisible.Store(false)
		u.dash.win.Hide()
		u.log.Info("dashboard closed: the tray icon is shown")
	}
}

func newDashboard(u *ui) *dashboard {
	d := &dashboard{u: u, win: u.app.NewWindow("Potluck dashboard")}
	d.headline = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	d.api = widget.NewLabel("")
	d.api.Selectable = true
	copyAPI := widget.NewButtonWithIcon("Copy", theme.ContentCopyIcon(), u.copyAPI)
	d.machine = widget.NewLabel("")
	d.machine.Wrapping = fyne.TextWrapWord
	d.warnings = widget.NewLabel("")
	d.warnings.Wrapping = fyne.TextWrapWord
	d.warnings.Importance = widget.DangerImportance
	d.warnings.Hide()
	d.peers = container.NewVBox()
	d.routing = widget.NewLabel("")
	d.routing.Wrapping = fyne.TextWrapWord
	d.requests = container.NewVBox()
	d.members = container.NewVBox()
	d.usage = container.NewVBox()
	d.usageHead = widget.NewLabel("")
	d.usageHead.Wrapping = fyne.TextWrapWord
	d.logs = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	d.logs.Selectable = true
	logScroll := container.NewScroll(d.logs)
	logScroll.SetMinSize(fyne.NewSize(0, 160))

	top := container.NewBorder(nil, nil, nil,
		container.NewHBox(widget.NewLabel("API"), d.api, copyAPI), d.headline)
	d.body = container.NewVBox(
		top,
		d.warnings,
		container.NewGridWithColumns(2,
			widget.NewCard("This machine", "", d.machine),
			widget.NewCard("Models and routing", "", d.routing)),
		widget.NewCard("Peers", "", d.peers),
		widget.NewCard("Recent requests", "", d.requests),
		widget.NewCard("Who served whom", "", container.NewVBox(d.usageHead, d.usage)),
		widget.NewCard("Members", "Every machine met in this network; only its owner can remove one (potluck members remove)", d.members),
		widget.NewCard("Log", "", logScroll),
	)
	d.scroll = container.NewVScroll(d.body)
	d.win.SetContent(d.scroll)
	d.win.Resize(fyne.NewSize(920, 720))
	d.win.SetCloseIntercept(func() {
		if u.tray == nil { // without a tray icon the dashboard is the app
			u.quit()
			return
		}
		u.dashVisible.Store(false)
		u.dashForHost = false
		d.win.Hide()
	})
	d.update(snapshot{Status: u.status, Peers: u.peers, Full: true})
	return d
}

// update shows s. Fyne thread.
func (d *dashboard) update(s snapshot) {
	st := s.Status
	d.headline.SetText(statusLine(st))
	d.api.SetText(orDash(st.API))
	d.machine.SetText(strings.Join(machineLines(st), "\n"))
	var warns []string
	for _, w := range st.Warnings {
		if w.Severity != nodestate.SeverityInfo {
			warns = append(warns, w.Message)
		}
	}
	d.warnings.SetText(strings.Join(warns, "\n"))
	d.warnings.Hidden = len(warns) == 0
	d.warnings.Refresh()
	d.routing.SetText(strings.Join(routingLines(st, s.Peers), "\n"))

	relayout := false
	rows := peerRows(s.Peers)
	if key := fmt.Sprint(rows); key != d.lastPeers || len(d.peers.Objects) == 0 {
		d.lastPeers = key
		fillTable(d.peers, peerColumns, rows,
			"No other machine yet. Copy the invite token from the tray menu and send it to a friend.")
		relayout = true
	}
	if s.Full {
		rows := requestRows(s.Recent)
		if key := fmt.Sprint(rows); key != d.lastRequests || len(d.requests.Objects) == 0 {
			d.lastRequests = key
			fillTable(d.requests, requestColumns, rows, "No requests yet. Point a chat app at the API address above.")
			relayout = true
		}
		d.usageHead.SetText(usageLine(s.Usage))
		if rows := usageRows(s.Usage); fmt.Sprint(rows) != d.lastUsage || len(d.usage.Objects) == 0 {
			d.lastUsage = fmt.Sprint(rows)
			fillTable(d.usage, usageColumns, rows, "No requests served between members yet.")
			relayout = true
		}
		if rows := memberRows(s.Members); fmt.Sprint(rows) != d.lastMembers || len(d.members.Objects) == 0 {
			d.lastMembers = fmt.Sprint(rows)
			fillTable(d.members, memberColumns, rows, "This computer is in no network yet.")
			relayout = true
		}
		logs := strings.Join(s.Logs, "\n")
		if logs == "" {
			logs = "(nothing logged yet)"
		}
		if logs != d.logs.Text {
			d.logs.SetText(logs)
		}
	}
	if relayout && d.body != nil {
		// A table that grew or shrank changes the size of everything under it.
		d.body.Refresh()
		d.scroll.Refresh()
	}
}

// fillTable replaces c's content with a grid of heads and rows, or the
// empty text when there are no rows.
func fillTable(c *fyne.Container, heads []string, rows [][]string, empty string) {
	if len(rows) == 0 {
		c.Objects = []fyne.CanvasObject{widget.NewLabel(empty)}
		c.Refresh()
		return
	}
	cells := make([]fyne.CanvasObject, 0, len(heads)*(len(rows)+1))
	for _, h := range heads {
		cells = append(cells, widget.NewLabelWithStyle(h, fyne.TextAlignLeading, fyne.TextStyle{Bold: true}))
	}
	for _, r := range rows {
		for _, v := range r {
			l := widget.NewLabel(v)
			l.Truncation = fyne.TextTruncateEllipsis
			cells = append(cells, l)
		}
	}
	c.Objects = []fyne.CanvasObject{container.NewGridWithColumns(len(heads), cells...)}
	c.Refresh()
}

func machineLines(st nodestate.Status) []string {
	lines := []string{
		"Name: " + orDash(st.Name),
		"Potluck " + orDash(st.Version) + " (Apache-2.0), up " + formatUptime(st.UptimeS),
	}
	offer := modeLabel(st.Share)
	if sharing(st) {
		offer += ", " + formatBytes(st.MemoryOffered)
	}
	lines = append(lines, "Shares: "+offer)
	switch {
	case st.Engine.Provisioning != nil:
		lines = append(lines, "llama.cpp: "+provisioningLabel(*st.Engine.Provisioning))
	case st.Engine.Available && st.Engine.Server != "":
		lines = append(lines, "llama.cpp: "+st.Engine.Server)
	case st.Engine.Available:
		lines = append(lines, "llama.cpp: found")
	default:
		lines = append(lines, "llama.cpp: not found")
	}
	if len(st.Engine.Installed) > 0 {
		lines = append(lines, "llama.cpp builds kept: "+strings.Join(st.Engine.Installed, ", "))
	}
	if st.Worker != nil && st.Worker.Matches != "" {
		lines = append(lines, fmt.Sprintf("Lends with llama.cpp %s, the version %s splits with", st.Worker.Release, st.Worker.Matches))
	}
	lines = append(lines, describeHardware(st.Hardware)...)
	if st.InMesh {
		lines = append(lines, fmt.Sprintf("Network: in a mesh, %s online%s", plural(st.PeersOnline, "peer", "peers"), reachLabel(st.Reachability)))
	} else {
		lines = append(lines, "Network: none yet")
	}
	return lines
}

// routingLines says which node holds what: the model served here, the
// models peers serve and the shard workers a split can use.
func routingLines(st nodestate.Status, peers []nodestate.Peer) []string {
	var lines []string
	if m := st.Model; m != nil {
		state := "loading"
		switch {
		case m.Ready:
			state = "ready"
		case st.State == nodestate.StateError:
			state = "failed"
		}
		where := "served here"
		if len(m.Holders) > 1 || (len(m.Holders) == 1 && m.Holders[0].Device != "CPU") {
			parts := make([]string, len(m.Holders))
			for i, h := range m.Holders {
				parts[i] = fmt.Sprintf("%s %s %d layers (%s, %.0f%% of the time)", h.Name, h.Device, h.Layers, formatBytes(h.Bytes), h.Share*100)
			}
			where = "on " + strings.Join(parts, ", ")
		}
		if m.TokensPerSecond > 0 {
			where += fmt.Sprintf("; predicted %.0f tok/s", m.TokensPerSecond)
		}
		lines = append(lines, fmt.Sprintf("%s: %s (%s)", m.ID, where, state))
		if d := m.Draft; d != nil {
			line := fmt.Sprintf("  draft %s on %s: predicted %.0f tok/s with it", d.Model, d.Device, d.TokensPerSecond)
			if d.Lookup != "" {
				line = fmt.Sprintf("  n-gram lookup (%s), no draft model: predicted %.0f tok/s with it", d.Lookup, d.TokensPerSecond)
			}
			if d.Drafted > 0 {
				line += fmt.Sprintf("; %.0f%% of %d drafted tokens accepted, %.0f tok/s measured", 100*d.Acceptance, d.Drafted, d.MeasuredTokensPerSecond)
			}
			lines = append(lines, line)
		}
		for _, e := range m.Excluded {
			lines = append(lines, "  left out: "+e)
		}
	}
	lines = append(lines, loadedLines(st.Loaded, time.Now())...)
	byModel := map[string][]string{}
	for _, p := range peers {
		if !p.Online {
			continue
		}
		for _, m := range p.Models {
			byModel[m] = append(byModel[m], peerName(p))
		}
	}
	models := make([]string, 0, len(byModel))
	for m := range byModel {
		models = append(models, m)
	}
	slices.Sort(models)
	for _, m := range models {
		lines = append(lines, fmt.Sprintf("%s: served by %s", m, strings.Join(byModel[m], ", ")))
	}
	if st.Model == nil || len(st.Model.Holders) <= 1 {
		if workers := shardWorkers(peers); len(workers) > 0 {
			lines = append(lines, "Shard workers ready: "+strings.Join(workers, ", "))
		}
	}
	if len(lines) == 0 {
		lines = append(lines, "No model is served yet.")
	}
	return lines
}

// loadedLines say which models are loaded here on request, and until
// when each stays: "tiny: loaded on request, ready, until 14:05".
func loadedLines(loaded []nodestate.LoadedModel, now time.Time) []string {
	var lines []string
	for _, l := range loaded {
		state := "loading"
		switch {
		case l.Ready && l.InFlight > 0:
			state = "serving"
		case l.Ready:
			state = "ready"
		case l.Detail != "":
			state = l.Detail
		}
		until := "stays loaded"
		if l.ExpiresAt != nil {
			until = "until " + l.ExpiresAt.Local().Format("15:04")
			if l.ExpiresAt.Sub(now) < time.Minute {
				until = "until " + l.ExpiresAt.Local().Format("15:04:05")
			}
		}
		lines = append(lines, fmt.Sprintf("%s: loaded on request, %s, %s", l.Name, state, until))
	}
	return lines
}

func shardWorkers(peers []nodestate.Peer) []string {
	var out []string
	for _, p := range peers {
		if p.Online && p.Mode == nodestate.ShareWorker {
			out = append(out, fmt.Sprintf("%s (%s)", peerName(p), formatBytes(p.MemoryOffered)))
		}
	}
	return out
}

// peerRows are the peers table, online ones first, then by name.
func peerRows(peers []nodestate.Peer) [][]string {
	ps := slices.Clone(peers)
	slices.SortStableFunc(ps, func(a, b nodestate.Peer) int {
		if a.Online != b.Online {
			if a.Online {
				return -1
			}
			return 1
		}
		return strings.Compare(peerName(a), peerName(b))
	})
	rows := make([][]string, 0, len(ps))
	for _, p := range ps {
		online := "yes"
		if !p.Online {
			online = "no, seen " + formatDuration(time.Duration(p.LastSeenMS)*time.Millisecond) + " ago"
		}
		rtt := "—"
		if p.RTTMS > 0 {
			rtt = fmt.Sprintf("%.0f ms", p.RTTMS)
		}
		models := strings.Join(p.Models, ", ")
		rows = append(rows, []string{peerName(p), modeLabel(p.Mode), formatBytes(p.MemoryOffered), online, connLabel(p), rtt, orDash(p.Version), orDash(models)})
	}
	return rows
}

// requestRows are the latest requests, newest first.
func requestRows(reqs []nodestate.Request) [][]string {
	rs := slices.Clone(reqs)
	slices.SortStableFunc(rs, func(a, b nodestate.Request) int { return b.Time.Compare(a.Time) })
	if len(rs) > dashRequests {
		rs = rs[:dashRequests]
	}
	rows := make([][]string, 0, len(rs))
	for _, r := range rs {
		rows = append(rows, []string{r.Time.Local().Format("15:04:05"), orDash(r.Model), orDash(r.Node), fmt.Sprint(r.Status), formatDuration(r.Duration)})
	}
	return rows
}

// memberRows are the members table: who, and where each stands.
func memberRows(v nodestate.MembersView) [][]string {
	rows := make([][]string, 0, len(v.Members))
	for _, m := range v.Members {
		id := m.PeerID
		if len(id) > 12 {
			id = "…" + id[len(id)-8:]
		}
		rows = append(rows, []string{m.Label(), id, m.State(), m.FirstSeen.Local().Format("2006-01-02 15:04"), m.LastSeen.Local().Format("2006-01-02 15:04")})
	}
	return rows
}

// connLabel says how this machine reaches a peer (see app.Peer's Conn).
func connLabel(p nodestate.Peer) string {
	var kind string
	switch p.Conn {
	case "direct":
		kind = "direct"
	case "hole-punched":
		kind = "direct (hole-punched)"
	case "relayed":
		return "through a relay"
	case "relay-lost":
		return "lost its relay"
	default:
		return "through others"
	}
	if p.Transport != "" {
		kind += ", " + p.Transport
	}
	return kind
}

// reachLabel says whether members across the internet can dial this
// machine.
func reachLabel(r string) string {
	switch r {
	case "public":
		return "; reachable from the internet"
	case "private":
		return "; behind a NAT (friends outside reach it through relays and hole punching)"
	}
	return ""
}

// usageLine sums up what this machine gave and used.
func usageLine(u nodestate.Usage) string {
	if u.Self == "" {
		return "This computer is in no network: nothing to account for."
	}
	line := fmt.Sprintf("You served %s tokens to friends and used %s (all time).", ledger.FormatTokens(u.Gave.All), ledger.FormatTokens(u.Used.All))
	if u.ShareLimit > 0 {
		line += fmt.Sprintf(" Each friend may use %s tokens a day of this computer's model.", ledger.FormatTokens(float64(u.ShareLimit)))
	}
	return line
}

// usageRows are the accounts, peer by peer.
func usageRows(u nodestate.Usage) [][]string {
	rows := make([][]string, 0, len(u.Peers))
	for _, p := range u.Peers {
		name := p.Name
		if name == "" {
			name = p.ID
		}
		rows = append(rows, []string{name,
			ledger.FormatTokens(p.Gave.Today), ledger.FormatTokens(p.Gave.Week), ledger.FormatTokens(p.Gave.All),
			ledger.FormatTokens(p.Used.Today), ledger.FormatTokens(p.Used.Week), ledger.FormatTokens(p.Used.All)})
	}
	return rows
}
