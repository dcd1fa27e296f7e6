//go:build !linux && !freebsd && !openbsd && !netbsd && !dragonfly

package tray

import "context"

// probeTrayHost: macOS and Windows always have a tray (menu bar, notification
// area); the BSDs are assumed to.
func probeTrayHost(context.Context) trayHost {
	return trayHost{Bus: true, Watcher: true}
}
