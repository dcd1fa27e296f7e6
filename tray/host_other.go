//go:build !linux && !freebsd && !openbsd && !netbsd && !dragonfly

package tray

import (
	"context"
	"log/slog"
)

// probeTrayHost: macOS and Windows always have a tray (menu bar, notification
// area); the BSDs are assumed to.
func probeTrayHost(context.Context) trayHost {
	return trayHost{Bus: true, Watcher: true}
}

// followTrayHost: the menu bar and the notification area do not come and go.
func followTrayHost(context.Context, *slog.Logger, func(bool)) {}
