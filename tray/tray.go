// Package tray is Potluck's desktop app: the tray menu, the join window and
// the dashboard, drawn with Fyne. It is a client of Controller and its
// events and knows nothing of the mesh, the engine or the API server.
//
// Run opens the app; CanShow says whether a desktop is there to open it on,
// and SignalRunning hands a second launch over to the first. Every change to
// a widget from a goroutine goes through fyne.Do.
package tray

import (
	"errors"
	"log/slog"

	// Before Fyne reads the locale; see the package doc.
	_ "github.com/potluck-gpu/potluck/tray/internal/cfix"
)

// AppID is the application id: the Fyne preferences key, the LaunchAgent
// label and the desktop entry's icon name.
const AppID = "io.github.potluck_gpu.potluck"

// ErrNoDisplay is returned by Run when there is no display to draw on.
var ErrNoDisplay = errors.New("no display: run the node headless")

// ErrRunning is returned by Run when another Potluck tray app already runs
// with the same data directory (it was asked to show its dashboard).
var ErrRunning = errors.New("potluck is already running")

// Options configure Run.
type Options struct {
	// DataDir holds the single-instance file. Required.
	DataDir string
	// Log receives what the tray has to say; nil discards it.
	Log *slog.Logger
	// Getenv reads the environment (DISPLAY, HOME, XDG_CONFIG_HOME). Nil
	// means os.Getenv.
	Getenv func(string) string
	// Executable and Args are the command "Start at login" runs. An empty
	// Executable means this process's executable.
	Executable string
	Args       []string
	// Version is shown in the dashboard and the app metadata.
	Version string
}

func (o Options) getenv(key string) string {
	if o.Getenv == nil {
		return ""
	}
	return o.Getenv(key)
}

func (o Options) logger() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}
