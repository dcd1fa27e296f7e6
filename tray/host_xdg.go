//go:build linux || freebsd || openbsd || netbsd || dragonfly

package tray

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

// watcherName is the bus name of the StatusNotifierWatcher, the service a
// tray icon registers with on Linux desktops.
const watcherName = "org.kde.StatusNotifierWatcher"

const watcherPath = dbus.ObjectPath("/StatusNotifierWatcher")

// itemPath is where fyne.io/systray exports the icon, on the process's
// shared session bus connection (dbus.SessionBus).
const itemPath = dbus.ObjectPath("/StatusNotifierItem")

// probeTrayHost connects to the session bus the way fyne.io/systray will
// (the same address discovery) and asks whether a watcher is there.
func probeTrayHost(ctx context.Context) trayHost {
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		return trayHost{Why: "no D-Bus session bus: " + err.Error()}
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var has bool
	err = conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, watcherName).Store(&has)
	if err != nil {
		return trayHost{Bus: true, Why: "the session bus does not answer: " + err.Error()}
	}
	if !has {
		return trayHost{Bus: true, Why: "no system tray (no " + watcherName + " on the session bus)"}
	}
	return trayHost{Bus: true, Watcher: true}
}

// Registration retries: the first waits registerFirst, each next one twice
// as long up to registerMax, and a watcher that has not listed the icon
// after registerTries is given up on until its name changes hands.
const (
	registerFirst = 100 * time.Millisecond
	registerMax   = 3 * time.Second
	registerTries = 12
)

// followTrayHost keeps the tray icon registered with the session bus's
// StatusNotifierWatcher until ctx ends. It calls shown(true) when the
// watcher lists the icon and shown(false) when the watcher goes away, once
// per change, and logs each change.
//
// fyne.io/systray registers the icon at start and again whenever the
// watcher's name gets a new owner. But a watcher owns its name before it
// serves it: that call then fails (UnknownObject) and is not retried, so
// after a panel starts or restarts the icon stayed missing. This registers
// the icon again, from the connection that exports it, with backoff, until
// the watcher lists it.
func followTrayHost(ctx context.Context, log *slog.Logger, shown func(bool)) {
	// A private connection for the signals: every signal a connection
	// receives reaches every channel registered on it, and fyne.io/systray's
	// own watch on the shared connection ends at the first one with fewer
	// than three arguments.
	watch, err := dbus.ConnectSessionBus()
	if err != nil {
		log.Warn("cannot follow the tray host", "err", err)
		return
	}
	defer watch.Close()
	item, err := dbus.SessionBus() // shared with fyne.io/systray: do not close
	if err != nil {
		log.Warn("cannot follow the tray host", "err", err)
		return
	}
	sigs := make(chan *dbus.Signal, 16)
	watch.Signal(sigs)
	for _, match := range [][]dbus.MatchOption{
		{dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, watcherName)},
		{dbus.WithMatchInterface(watcherName)}, // items registered and unregistered
	} {
		if err := watch.AddMatchSignal(match...); err != nil {
			log.Warn("cannot follow the tray host", "err", err)
			return
		}
	}

	f := hostFollower{watch: watch, me: item.Names()[0], register: func(ctx context.Context) error {
		return item.Object(watcherName, watcherPath).CallWithContext(ctx, watcherName+".RegisterStatusNotifierItem", 0, string(itemPath)).Err
	}, log: log, shown: shown}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-sigs:
			if !ok {
				log.Warn("the session bus closed: no longer following the tray host")
				return
			}
			for len(sigs) > 0 { // a burst of signals is one look
				<-sigs
			}
		case <-timer.C:
		}
		timer.Stop()
		if wait := f.step(ctx); wait > 0 {
			timer.Reset(wait)
		}
	}
}

// hostFollower is followTrayHost's state between looks at the bus.
type hostFollower struct {
	watch    *dbus.Conn                      // the private connection
	me       string                          // the unique name of the connection that exports the icon
	register func(ctx context.Context) error // asks the watcher to list the icon
	log      *slog.Logger
	shown    func(bool)

	looked  bool   // step ran before
	owner   string // the watcher's unique name; "" while there is none
	listed  bool   // what shown was last told
	tries   int    // registrations since the icon was last listed, for this owner
	lastErr error  // why the last one failed
}

// step looks at the watcher, registers the icon when it is not listed, and
// returns how long to wait before looking again (0: until a signal).
func (f *hostFollower) step(ctx context.Context) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	owner := f.nameOwner(ctx, watcherName)
	if owner != f.owner || !f.looked {
		switch {
		case owner == "" && f.looked:
			f.log.Info("tray host gone; the icon returns when it does")
		case owner != "" && f.looked:
			f.log.Info("tray host appeared; registering the icon", "watcher", owner)
		}
		f.owner, f.tries, f.lastErr, f.looked = owner, 0, nil, true
	}
	if owner == "" {
		f.report(false)
		return 0
	}
	if f.isListed(ctx) {
		f.tries = 0
		f.report(true)
		return 0
	}
	f.report(false)
	if f.tries >= registerTries {
		return 0 // given up on this watcher; a signal may still show the icon listed
	}
	f.tries++
	if err := f.exported(ctx); err != nil {
		f.lastErr = err // fyne.io/systray exports it once the app loop runs
	} else if err := f.register(ctx); err != nil {
		f.lastErr = err
	} else if f.isListed(ctx) {
		f.tries = 0
		f.report(true)
		return 0
	}
	if f.tries == registerTries {
		f.log.Warn("the tray host does not show the icon; start potluck again to open the dashboard", "watcher", owner, "err", f.lastErr)
		return 0
	}
	return min(registerFirst<<(f.tries-1), registerMax)
}

func (f *hostFollower) report(listed bool) {
	if listed == f.listed {
		return
	}
	f.listed = listed
	if listed {
		f.log.Info("tray icon registered with the tray host", "watcher", f.owner)
	}
	f.shown(listed)
}

// nameOwner is the unique name owning name, or "" (none, or no answer).
func (f *hostFollower) nameOwner(ctx context.Context, name string) string {
	var owner string
	if f.watch.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, name).Store(&owner) != nil {
		return ""
	}
	return owner
}

// isListed reports whether the watcher lists the icon. Watchers name an
// item "service/path" or "service", service being the unique or a
// well-known name of its connection.
func (f *hostFollower) isListed(ctx context.Context) bool {
	var v dbus.Variant
	err := f.watch.Object(watcherName, watcherPath).CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0,
		watcherName, "RegisteredStatusNotifierItems").Store(&v)
	if err != nil {
		return false
	}
	items, _ := v.Value().([]string)
	for _, it := range items {
		service, _, _ := strings.Cut(it, "/")
		if service == f.me || (service != "" && !strings.HasPrefix(service, ":") && f.nameOwner(ctx, service) == f.me) {
			return true
		}
	}
	return false
}

// exported checks that the icon is on the bus, where the watcher and the
// host will read it.
func (f *hostFollower) exported(ctx context.Context) error {
	return f.watch.Object(f.me, itemPath).CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0,
		"org.kde.StatusNotifierItem", "Id").Err
}
