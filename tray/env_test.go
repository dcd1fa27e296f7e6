package tray

import (
	"runtime"
	"testing"
)

func TestX11Address(t *testing.T) {
	for _, tc := range []struct {
		display, network, addr string
		ok                     bool
	}{
		{"", "", "", false},
		{":0", "unix", "/tmp/.X11-unix/X0", true},
		{":99.0", "unix", "/tmp/.X11-unix/X99", true},
		{"unix:2", "unix", "/tmp/.X11-unix/X2", true},
		{"localhost:10.0", "tcp", "localhost:6010", true},
		{"[::1]:1", "tcp", "[::1]:6001", true},
		{"/private/tmp/com.apple.launchd.x/org.xquartz:0", "unix", "/private/tmp/com.apple.launchd.x/org.xquartz", true},
		{"wayland-0", "", "", false},
		{":x", "", "", false},
	} {
		network, addr, ok := x11Address(tc.display)
		if network != tc.network || addr != tc.addr || ok != tc.ok {
			t.Errorf("x11Address(%q) = %q %q %v, want %q %q %v", tc.display, network, addr, ok, tc.network, tc.addr, tc.ok)
		}
	}
}

func TestCanShowWithoutDisplay(t *testing.T) {
	if !needsX11(runtime.GOOS) {
		t.Skip("no X11 on " + runtime.GOOS)
	}
	env := map[string]string{"WAYLAND_DISPLAY": "wayland-0"}
	if CanShow(func(k string) string { return env[k] }) {
		t.Error("CanShow without DISPLAY")
	}
	env["DISPLAY"] = ":4242" // no such server
	if CanShow(func(k string) string { return env[k] }) {
		t.Error("CanShow with a DISPLAY nobody serves")
	}
}

func TestTrayPlan(t *testing.T) {
	for _, tc := range []struct {
		host                   trayHost
		useTray, openDashboard bool
	}{
		{trayHost{}, false, true},                         // no session bus: systray would panic on quit
		{trayHost{Watcher: true}, false, true},            // cannot happen, but no bus wins
		{trayHost{Bus: true}, true, true},                 // no tray host yet: icon registers later, window now
		{trayHost{Bus: true, Watcher: true}, true, false}, // a tray
	} {
		useTray, open := trayPlan(tc.host)
		if useTray != tc.useTray || open != tc.openDashboard {
			t.Errorf("trayPlan(%+v) = %v, %v; want %v, %v", tc.host, useTray, open, tc.useTray, tc.openDashboard)
		}
	}
}
