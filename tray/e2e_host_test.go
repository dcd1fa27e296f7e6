//go:build linux

package tray

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestE2ETrayHost runs the potluck binary under Xvfb with a session bus and
// starts, stops and restarts a real tray panel around it: the icon follows
// the StatusNotifier watcher, and a dashboard that opened only for lack of
// one closes.
func TestE2ETrayHost(t *testing.T) {
	bin := e2eBinary(t)
	t.Run("host starts later", func(t *testing.T) {
		d := newXServer(t)
		d.startBus(t)
		p := d.startPotluck(t, bin)
		d.window(t, "Potluck dashboard")

		d.startWatcher(t)
		d.waitForItemOf(t, p)
		d.waitNoWindow(t, "Potluck dashboard")
		p.waitHostLog(t, hostRegistered, 0)
		p.waitLogOnce(t, "dashboard closed: the tray icon is shown")
	})
	t.Run("host restarts", func(t *testing.T) {
		d := newXServer(t)
		d.startBus(t)
		stop := d.startWatcher(t)
		p := d.startPotluck(t, bin)
		d.waitForItemOf(t, p)
		p.waitHostLog(t, hostRegistered, 0)

		stop() // the panel restarts
		p.waitHostLog(t, hostGone, 1)
		d.startWatcher(t)
		d.waitForItemOf(t, p)
		p.waitHostLog(t, hostRegistered, 1)
		if id := d.visibleWindow("Potluck dashboard"); id != "" {
			t.Errorf("the dashboard opened (window %s) while a tray host showed the icon", id)
		}
	})
}

// What potluck logs as the tray host comes and goes.
const (
	hostGone       = "tray host gone"
	hostAppeared   = "tray host appeared"
	hostRegistered = "tray icon registered"
)

// waitHostLog waits until the last of potluck's tray host lines is last,
// after at least gone "gone" lines, and checks that no line repeats
// without a change in between.
func (p *potluck) waitHostLog(t *testing.T, last string, gone int) {
	t.Helper()
	var lines []string
	poll(t, 10*time.Second, fmt.Sprintf("potluck to log %q after %d %q", last, gone, hostGone), func() bool {
		lines = lines[:0]
		for _, l := range strings.Split(p.Logs.String(), "\n") {
			for _, m := range []string{hostGone, hostAppeared, hostRegistered} {
				if strings.Contains(l, m) {
					lines = append(lines, m)
				}
			}
		}
		n := 0
		for _, l := range lines {
			if l == hostGone {
				n++
			}
		}
		return len(lines) > 0 && lines[len(lines)-1] == last && n >= gone
	})
	for i := 1; i < len(lines); i++ {
		if lines[i] == lines[i-1] {
			t.Errorf("potluck logged %q twice in a row: %q", lines[i], lines)
		}
	}
}

// waitForItemOf waits until the watcher lists an item that p's process
// exports, and checks that it lists only one (a host would show two icons).
func (d *xdesk) waitForItemOf(t *testing.T, p *potluck) {
	t.Helper()
	var items []string
	poll(t, 15*time.Second, "the watcher to list potluck's icon", func() bool {
		v, err := d.bus.Object(watcherName, "/StatusNotifierWatcher").GetProperty(watcherName + ".RegisteredStatusNotifierItems")
		if err != nil {
			return false
		}
		all, _ := v.Value().([]string)
		items = items[:0]
		for _, it := range all {
			service, _, _ := strings.Cut(it, "/")
			var pid uint32
			err := d.bus.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, service).Store(&pid)
			if err == nil && int(pid) == p.Cmd.Process.Pid {
				items = append(items, it)
			}
		}
		return len(items) > 0
	})
	if len(items) > 1 {
		t.Errorf("the watcher lists potluck's icon %d times: %q", len(items), items)
	}
}

// waitNoWindow waits until no window with this title is visible.
func (d *xdesk) waitNoWindow(t *testing.T, title string) {
	t.Helper()
	poll(t, 10*time.Second, "the window "+title+" to close", func() bool { return d.visibleWindow(title) == "" })
}

// waitLogOnce waits for potluck to log s, and fails when it logs it twice.
func (p *potluck) waitLogOnce(t *testing.T, s string) {
	t.Helper()
	count := func() int { return strings.Count(p.Logs.String(), s) }
	poll(t, 10*time.Second, "potluck to log "+s, func() bool { return count() > 0 })
	if n := count(); n != 1 {
		t.Errorf("potluck logged %q %d times, want 1", s, n)
	}
}
