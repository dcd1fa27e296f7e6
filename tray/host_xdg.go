//go:build linux || freebsd || openbsd || netbsd || dragonfly

package tray

import (
	"context"
	"time"

	"github.com/godbus/dbus/v5"
)

// watcherName is the bus name of the StatusNotifierWatcher, the service a
// tray icon registers with on Linux desktops.
const watcherName = "org.kde.StatusNotifierWatcher"

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
