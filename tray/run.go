package tray

import (
	"context"
	"fmt"
	"os"
	"sync"

	"fyne.io/fyne/v2"
	fyneapp "fyne.io/fyne/v2/app"
	"fyne.io/fyne/v2/driver/desktop"

	"github.com/potluck-gpu/potluck/icons"
)

// Run opens the tray app on ctrl and returns when the user quits or ctx
// ends; neither is an error. The caller then stops the node. Run must be
// called from the main goroutine (the windowing system wants its thread).
//
// It returns ErrNoDisplay without a display (see CanShow) and ErrRunning
// when another tray app has the same data directory (it was asked to show
// its dashboard). Without a tray host it opens the dashboard, and closes it
// again when a host appears later and shows the icon; without a D-Bus
// session bus it does not touch the tray at all.
func Run(ctx context.Context, ctrl Controller, opts Options) error {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.DataDir == "" {
		return fmt.Errorf("tray: no data directory")
	}
	if !CanShow(opts.Getenv) {
		return ErrNoDisplay
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return err
	}
	inst, err := claimInstance(opts.DataDir)
	if err != nil {
		return err
	}
	defer inst.Close()
	log := opts.logger()

	host := probeTrayHost(ctx)
	useTray, openDashboard := trayPlan(host)
	if host.Why != "" {
		log.Info("tray", "note", host.Why, "tray_icon", useTray, "dashboard", openDashboard)
	}

	appIcon := fyne.NewStaticResource("potluck.png", icons.App())
	fyneapp.SetMetadata(fyne.AppMetadata{ID: AppID, Name: "Potluck", Version: opts.Version, Icon: appIcon, Release: true})
	a := fyneapp.NewWithID(AppID)
	a.SetIcon(appIcon)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if ctx.Err() != nil { // stopped while starting
		return nil
	}
	u := newUI(ctx, a, ctrl, opts)
	u.login = loginItem(opts, log)
	u.fillMenu()

	if desk, ok := a.(desktop.App); ok && useTray {
		u.tray = desk
		u.updateIcon()
		desk.SetSystemTrayMenu(u.menu)
	}
	a.Settings().AddListener(func(fyne.Settings) { u.iconKey = ""; u.updateIcon() })

	var wg sync.WaitGroup
	wg.Go(func() { u.run(ctx) })
	wg.Go(func() { inst.serve(ctx, func() { fyne.Do(u.showDashboard) }) })
	if u.tray != nil {
		wg.Go(func() {
			followTrayHost(ctx, log, func(shown bool) { fyne.Do(func() { u.trayShown(shown) }) })
		})
	}
	stop := context.AfterFunc(ctx, func() { quit(a) })
	defer stop()

	a.Lifecycle().SetOnStarted(func() {
		if u.tray == nil {
			u.showDashboard() // the dashboard is the app
		} else if openDashboard && !u.iconShown {
			u.showDashboard()
			u.dashForHost = true
		}
	})
	a.Run()
	stop() // the loop is gone: quitting again would touch a terminated GLFW
	cancel()
	inst.Close()
	wg.Wait()
	return nil
}

// quit asks a to stop from outside its loop. Fyne stops by itself on
// SIGINT and SIGTERM, the same signals that end ctx, so the loop may
// already be gone; then Fyne runs the call here, on a terminated GLFW,
// which panics. That race is harmless and is absorbed.
func quit(a fyne.App) {
	defer func() { _ = recover() }()
	fyne.Do(a.Quit)
}

// loginItem is "Start at login" for this platform, or nil where the
// command to start cannot be known.
func loginItem(opts Options, log interface{ Warn(string, ...any) }) autostart {
	exe := opts.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			log.Warn("start at login unavailable", "err", err)
			return nil
		}
	}
	a, err := newAutostart(opts.Getenv, autostartCommand{Exe: exe, Args: opts.Args})
	if err != nil {
		log.Warn("start at login unavailable", "err", err)
		return nil
	}
	return a
}
