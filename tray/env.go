package tray

import (
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// CanShow reports whether this process can open windows: always on macOS
// and Windows; on Linux and the BSDs when DISPLAY names an X server that
// accepts connections (Wayland desktops provide one through XWayland).
// Without it Fyne would panic, so the caller runs the node headless.
func CanShow(getenv func(string) string) bool {
	if !needsX11(runtime.GOOS) {
		return true
	}
	network, addr, ok := x11Address(getenv("DISPLAY"))
	if !ok {
		return false
	}
	c, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil && network == "unix" {
		// Linux X servers also listen on an abstract socket.
		c, err = net.DialTimeout(network, "@"+addr, 2*time.Second)
	}
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func needsX11(goos string) bool {
	switch goos {
	case "darwin", "windows", "ios", "android", "js":
		return false
	}
	return true
}

// x11Address turns a DISPLAY value (":0", ":1.0", "unix:2", "host:10.0",
// "/tmp/launch-x/org.xquartz:0") into the address of its X server.
func x11Address(display string) (network, addr string, ok bool) {
	if display == "" {
		return "", "", false
	}
	if strings.HasPrefix(display, "/") { // a launchd socket path, "path:N"
		i := strings.LastIndex(display, ":")
		if i < 0 {
			return "unix", display, true
		}
		return "unix", display[:i], true
	}
	i := strings.LastIndex(display, ":")
	if i < 0 {
		return "", "", false
	}
	host, num := display[:i], display[i+1:]
	if dot := strings.Index(num, "."); dot >= 0 {
		num = num[:dot]
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 {
		return "", "", false
	}
	if host == "" || host == "unix" {
		return "unix", "/tmp/.X11-unix/X" + num, true
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return "tcp", net.JoinHostPort(host, strconv.Itoa(6000+n)), true
}

// trayHost is what the desktop offers a tray icon.
type trayHost struct {
	Bus     bool   // a D-Bus session bus answers (always true off Linux)
	Watcher bool   // a StatusNotifierWatcher owns its name on that bus
	Why     string // what is missing, for the log
}

// trayPlan is what Run does on a host: put the menu in the tray (which
// fyne.io/systray only survives with a session bus), and open the
// dashboard at start when no tray host would show the icon.
func trayPlan(h trayHost) (useTray, openDashboard bool) {
	switch {
	case !h.Bus:
		return false, true
	case !h.Watcher:
		return true, true
	}
	return true, false
}
