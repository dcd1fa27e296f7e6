package tray

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/theme"

	"github.com/potluck-gpu/potluck/icons"
	"github.com/potluck-gpu/potluck/nodestate"
)

// pollEvery is how often the tray reads the node's status between events
// (RTTs and uptimes change without one).
const pollEvery = 2 * time.Second

// busyFor is how long a served request keeps the icon busy.
const busyFor = 3 * time.Second

// ui is the tray app. Its fields after the first block are only touched on
// the Fyne thread (through do).
type ui struct {
	ctx     context.Context // ends when the app quits
	app     fyne.App
	ctrl    Controller
	log     *slog.Logger
	dataDir string
	do      func(func()) // runs a function on the Fyne thread: fyne.Do
	quit    func()       // leaves the app
	login   autostart    // nil where "Start at login" is unavailable
	desktop string       // XDG_CURRENT_DESKTOP

	refreshc    chan struct{}
	dashVisible atomic.Bool

	tray      desktop.App // nil without a tray icon
	status    nodestate.Status
	peers     []nodestate.Peer
	busyUntil time.Time
	iconKey   string
	menu      *fyne.Menu
	items     menuItems
	join      *joinWindow
	dash      *dashboard
	memory    *memoryWindow
	models    *modelsWindow

	iconShown   bool // a tray host lists the icon
	dashForHost bool // the dashboard is open only because no tray host showed the icon
}

func newUI(ctx context.Context, a fyne.App, ctrl Controller, opts Options) *ui {
	u := &ui{
		ctx: ctx, app: a, ctrl: ctrl, log: opts.logger(), dataDir: opts.DataDir,
		do: fyne.Do, quit: a.Quit, desktop: opts.getenv("XDG_CURRENT_DESKTOP"),
		refreshc: make(chan struct{}, 1),
	}
	u.menu = u.buildMenu()
	return u
}

// snapshot is what the UI shows, read off the Fyne thread.
type snapshot struct {
	Status  nodestate.Status
	Peers   []nodestate.Peer
	Recent  []nodestate.Request // read only while the dashboard is open
	Logs    []string
	Members nodestate.MembersView // read only while the dashboard is open
	Usage   nodestate.Usage       // read only while the dashboard is open
	Full    bool                  // Recent and Logs were read
}

func (u *ui) read() snapshot {
	s := snapshot{Status: u.ctrl.Status(), Peers: u.ctrl.Peers()}
	if u.dashVisible.Load() {
		s.Recent, s.Logs, s.Full = u.ctrl.Recent(), u.ctrl.Logs(dashLogLines), true
		s.Members, s.Usage = u.ctrl.Members(), u.ctrl.Usage()
	}
	return s
}

// run follows the node until ctx ends: every event and every pollEvery it
// reads the node and updates the menu, the icon and the open windows.
func (u *ui) run(ctx context.Context) {
	events, cancel := u.ctrl.Subscribe()
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	u.refresh()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			u.do(func() { u.handle(e) })
		case <-u.refreshc:
		case <-tick.C:
		}
		u.refresh()
	}
}

// requestRefresh asks run to read the node now; requests coalesce.
func (u *ui) requestRefresh() {
	select {
	case u.refreshc <- struct{}{}:
	default:
	}
}

func (u *ui) refresh() {
	s := u.read()
	u.do(func() { u.apply(s) })
}

// apply shows s. Fyne thread.
func (u *ui) apply(s snapshot) {
	u.status, u.peers = s.Status, s.Peers
	u.updateMenu()
	u.updateIcon()
	if u.dash != nil {
		u.dash.update(s)
	}
}

// handle reacts to an event: notifications and the busy icon. Fyne thread.
func (u *ui) handle(e nodestate.Event) {
	switch e.Kind {
	case nodestate.EventJoined:
		msg := e.Message
		if msg == "" {
			msg = "This computer is now part of the pool."
		}
		u.notify("Joined the network", msg)
	case nodestate.EventPeerLost:
		if e.Peer != nil {
			u.notify(peerName(*e.Peer)+" left", "It no longer shares its memory with the pool.")
		}
	case nodestate.EventModelReady:
		u.notify("Model ready", fmt.Sprintf("%s can be used at %s", orDash(e.Message), u.status.API))
	case nodestate.EventRequest:
		u.busyUntil = time.Now().Add(busyFor)
		u.updateIcon()
		time.AfterFunc(busyFor, u.requestRefresh)
	}
}

func (u *ui) notify(title, body string) {
	u.app.SendNotification(fyne.NewNotification(title, body))
}

// background runs f off the Fyne thread with the app's context; a failure
// is told to the user as what (e.g. "Could not share this computer").
func (u *ui) background(what string, f func(ctx context.Context) error) {
	go func() {
		err := f(u.ctx)
		if err != nil && u.ctx.Err() == nil {
			u.log.Warn(what, "err", err)
			u.do(func() { u.notify(what, err.Error()) })
		}
		u.requestRefresh()
	}()
}

// updateIcon sets the tray icon for the state and the theme. Fyne thread.
func (u *ui) updateIcon() {
	if u.tray == nil {
		return
	}
	state := iconState(u.status, time.Now().Before(u.busyUntil))
	variant := trayVariant(u.desktop, u.app.Settings().ThemeVariant() == theme.VariantDark)
	const size = 64 // hosts scale it down; 64 stays sharp on HiDPI panels
	key := icons.TrayName(state, variant, size)
	if key == u.iconKey {
		return
	}
	u.iconKey = key
	u.tray.SetSystemTrayIcon(fyne.NewStaticResource(key, icons.Tray(state, variant, size)))
}

// trayVariant picks the icon for the panel: GNOME-style shells keep a dark
// top bar in light mode; elsewhere the panel follows the theme.
func trayVariant(desktop string, darkTheme bool) icons.Variant {
	for _, d := range strings.Split(strings.ToUpper(desktop), ":") {
		switch d {
		case "GNOME", "UNITY", "PANTHEON", "UBUNTU":
			return icons.Dark
		}
	}
	if darkTheme {
		return icons.Dark
	}
	return icons.Light
}

func peerName(p nodestate.Peer) string {
	if p.Name != "" {
		return p.Name
	}
	if len(p.ID) > 12 {
		return p.ID[:12] + "…"
	}
	return orDash(p.ID)
}
