//go:build linux

package tray

import (
	"bufio"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/potluck-gpu/potluck/internal/nodetest"
)

var updateDocs = flag.Bool("update-docs", false, "write the end-to-end screenshots to docs/ (else to a temporary directory)")

// e2eTools are the programs the end-to-end test drives, with their Debian
// packages.
var e2eTools = map[string]string{
	"Xvfb":                    "xvfb",
	"dbus-daemon":             "dbus",
	"gtk-sni-tray-standalone": "haskell-gtk-sni-tray-utils",
	"xdotool":                 "xdotool",
	"import":                  "imagemagick",
}

// TestE2E runs the real potluck binary as a tray app under Xvfb, with a
// private session bus and a StatusNotifier watcher and host, and drives it
// through D-Bus like a desktop would.
func TestE2E(t *testing.T) {
	bin := e2eBinary(t)
	shots := t.TempDir()
	if *updateDocs {
		root, err := nodetest.ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		shots = filepath.Join(root, "docs")
	}

	t.Run("tray", func(t *testing.T) { e2eTray(t, bin, shots) })
	t.Run("no session bus", func(t *testing.T) { e2eNoBus(t, bin) })
	t.Run("no display", func(t *testing.T) { e2eHeadless(t, bin) })
}

func TestMain(m *testing.M) {
	code := m.Run()
	nodetest.RemoveBinary()
	os.Exit(code)
}

// e2eBinary checks what the end-to-end tests need and returns the potluck
// command; it skips with -short or while main does not start the tray.
func e2eBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: not with -short")
	}
	var missing []string
	for tool, pkg := range e2eTools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		t.Fatalf("the tray end-to-end test needs: apt-get install %s", strings.Join(missing, " "))
	}
	if !mainUsesTray(t) {
		t.Skip("main does not start the tray yet: `potluck` with no command must call tray.Run (see tray.Run's doc)")
	}
	return nodetest.Binary(t)
}

func e2eTray(t *testing.T, bin, shots string) {
	d := newDesktop(t, true)
	p := d.startPotluck(t, bin)
	item := d.waitForItem(t)
	// The menu is read as a tray host reads it, until it is whole: a host
	// may ask while the tray still lays it out.
	var labels []string
	wants := []string{labelShare, labelShareAs, labelWorker, labelServer, labelMemory, labelJoin, labelInvite, labelAPI, labelDashboard, labelLogin, labelQuit}
	whole := func() bool {
		labels = labels[:0]
		for _, it := range d.menu(t, item) {
			labels = append(labels, it.label)
		}
		for _, want := range wants {
			if !slices.Contains(labels, want) {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(20 * time.Second); !whole() && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
	}
	for _, want := range wants {
		if !slices.Contains(labels, want) {
			t.Errorf("tray menu lacks %q: %q", want, labels)
		}
	}
	if labels[0] != "Not sharing" && !strings.Contains(labels[0], "llama.cpp") {
		t.Errorf("status line %q", labels[0])
	}

	d.click(t, item, labelShare)
	p.WaitStatus(t, "sharing", func(st map[string]any) bool { return st["share"] != "off" && st["share"] != nil })
	d.waitForLabel(t, item, func(l string) bool { return strings.HasPrefix(l, "Sharing") || strings.HasPrefix(l, "Serving") })

	// The menu as a person sees it, for the README.
	before := d.screen(t)
	d.xdotool(t, "mousemove", "14", "15", "click", "3")
	d.save(t, filepath.Join(shots, "tray-menu.png"), cropChange(t, before, d.settled(t, "", before)))
	d.xdotool(t, "key", "Escape")

	d.click(t, item, labelJoin)
	join := d.window(t, "Join a network")
	d.save(t, filepath.Join(shots, "tray-join.png"), d.settled(t, join, nil))

	// A second launch opens the first one's dashboard and exits.
	second := exec.Command(bin)
	second.Env = p.Cmd.Env
	if out, err := second.CombinedOutput(); err != nil {
		t.Fatalf("second launch: %v\n%s", err, out)
	}
	dash := d.window(t, "Potluck dashboard")
	d.save(t, filepath.Join(shots, "tray-dashboard.png"), d.settled(t, dash, nil))

	d.click(t, item, labelQuit)
	p.waitExit(t, 0)
}

func e2eNoBus(t *testing.T, bin string) {
	d := newDesktop(t, false)
	p := d.startPotluck(t, bin)
	p.WaitStatus(t, "the API", func(map[string]any) bool { return true })
	d.window(t, "Potluck dashboard")
	p.Cmd.Process.Signal(syscall.SIGTERM)
	p.waitExit(t, 0)
	if strings.Contains(p.Logs.String(), "panic") {
		t.Errorf("potluck panicked:\n%s", p.Logs.String())
	}
}

func e2eHeadless(t *testing.T, bin string) {
	p := startPotluck(t, bin, []string{"DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent"})
	p.WaitStatus(t, "the API", func(map[string]any) bool { return true })
	p.Cmd.Process.Signal(syscall.SIGTERM)
	p.waitExit(t, 0)
}

// mainUsesTray reports whether the potluck command links this package.
func mainUsesTray(t *testing.T) bool {
	out, err := exec.Command("go", "list", "-deps", "github.com/potluck-gpu/potluck").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	return slices.Contains(strings.Fields(string(out)), "github.com/potluck-gpu/potluck/tray")
}

// xdesk is an X server, optionally with a session bus and a tray.
type xdesk struct {
	env []string // DISPLAY and DBUS_SESSION_BUS_ADDRESS
	bus *dbus.Conn
	dir string
}

func newDesktop(t *testing.T, withTray bool) *xdesk {
	d := newXServer(t)
	if !withTray {
		d.env = append(d.env, "DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(d.dir, "no-bus"))
		return d
	}
	d.startBus(t)
	d.startWatcher(t)
	return d
}

// newXServer starts an X server, with no session bus yet.
func newXServer(t *testing.T) *xdesk {
	d := &xdesk{dir: t.TempDir()}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	xvfb := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", "1280x800x24", "-nolisten", "tcp", "-noreset")
	xvfb.ExtraFiles = []*os.File{w}
	background(t, xvfb)
	w.Close()
	display, err := bufio.NewReader(r).ReadString('\n')
	r.Close()
	if err != nil {
		t.Fatalf("Xvfb did not start: %v", err)
	}
	d.env = append(d.env, "DISPLAY=:"+strings.TrimSpace(display))
	return d
}

// startBus starts a session bus for the desktop, with no tray host yet.
func (d *xdesk) startBus(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	daemon := exec.Command("dbus-daemon", "--session", "--nofork", "--print-address=3")
	daemon.ExtraFiles = []*os.File{w}
	background(t, daemon)
	w.Close()
	addr, err := bufio.NewReader(r).ReadString('\n')
	r.Close()
	if err != nil {
		t.Fatalf("dbus-daemon did not start: %v", err)
	}
	addr = strings.TrimSpace(addr)
	d.env = append(d.env, "DBUS_SESSION_BUS_ADDRESS="+addr)
	if d.bus, err = dbus.Connect(addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.bus.Close() })
}

// startWatcher starts a tray panel: a StatusNotifier watcher and host, and
// waits until its host is registered with its watcher. The returned
// function stops it (SIGTERM, as when a panel restarts) and waits until its
// watcher has left the bus.
//
// The panel sometimes dies as it starts (its host asks its watcher before
// the watcher serves: UnknownObject); it is then started again.
func (d *xdesk) startWatcher(t *testing.T) (stop func()) {
	t.Helper()
	out := &nodetest.Logs{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tray panel output:\n%s", out.String())
		}
	})
	for try := 1; ; try++ {
		watcher := exec.Command("gtk-sni-tray-standalone", "--watcher")
		// NO_AT_BRIDGE: no accessibility bus, whose processes outlive the test.
		watcher.Env = append(os.Environ(), append(d.env, "NO_AT_BRIDGE=1")...)
		watcher.Stdout, watcher.Stderr = out, out
		end, exited := background(t, watcher)
		stop = func() {
			t.Helper()
			end()
			poll(t, 10*time.Second, "the StatusNotifierWatcher to leave", func() bool { return !d.hasWatcher() })
		}
		if d.panelUp(watcher.Process.Pid, exited) {
			return stop
		}
		stop()
		if try == 3 {
			t.Fatalf("the tray panel did not start in %d tries", try)
		}
		t.Logf("the tray panel did not come up; starting it again. It said:\n%s", out.String())
	}
}

// panelUp waits until the panel with this pid owns the watcher's name and
// its host is registered: true, or false when it exits first or 30 s pass.
func (d *xdesk) panelUp(pid int, exited <-chan struct{}) bool {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			return false
		default:
		}
		var owner uint32
		if d.bus.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, watcherName).Store(&owner) != nil || int(owner) != pid {
			continue
		}
		v, err := d.bus.Object(watcherName, "/StatusNotifierWatcher").GetProperty(watcherName + ".IsStatusNotifierHostRegistered")
		if up, _ := v.Value().(bool); err == nil && up {
			return true
		}
	}
	return false
}

func (d *xdesk) hasWatcher() bool {
	var has bool
	return d.bus.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, watcherName).Store(&has) == nil && has
}

// background starts cmd and stops it when the test ends, or earlier when
// stop is called; exited closes when it ends.
func background(t *testing.T, cmd *exec.Cmd) (stop func(), exited <-chan struct{}) {
	t.Helper()
	if cmd.Stderr == nil {
		cmd.Stderr = io.Discard
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		})
	}
	t.Cleanup(stop)
	return stop, done
}

// poll waits for cond, checking every 100 ms.
func poll(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// potluck is the potluck command running as a desktop session starts it.
type potluck struct{ *nodetest.Node }

func (d *xdesk) startPotluck(t *testing.T, bin string) *potluck {
	return startPotluck(t, bin, d.env)
}

// startPotluck runs bin with no command, as a desktop session does, in an
// environment of its own plus env; it is killed at the end of the test.
func startPotluck(t *testing.T, bin string, env []string) *potluck {
	t.Helper()
	api, err := nodetest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	cache, _ := os.UserCacheDir() // where a provisioned llama.cpp is
	return &potluck{nodetest.StartNoWait(t, nodetest.Config{
		Bin: bin, Addr: api, Command: []string{}, Wait: 90 * time.Second, Grace: -1,
		Env: append([]string{
			"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
			"XDG_CACHE_HOME=" + cache, "XDG_RUNTIME_DIR=" + home, "LANG=C.UTF-8",
			"POTLUCK_DATA_DIR=" + filepath.Join(home, "data"), "POTLUCK_API=" + api, "POTLUCK_NAME=kitchen",
			// The network "Share this computer" starts stays on this machine:
			// no DHT (public bootstrap nodes), no mDNS on real interfaces.
			"POTLUCK_P2P_DISABLE_DHT=1", "POTLUCK_P2P_DISABLE_MDNS=1", "POTLUCK_P2P_DISABLE_PORT_MAP=1", "POTLUCK_P2P_LISTEN_MADDRS=/ip4/127.0.0.1/tcp/0",
		}, env...),
	})}
}

func (p *potluck) waitExit(t *testing.T, code int) {
	t.Helper()
	select {
	case <-p.Exited():
	case <-time.After(30 * time.Second):
		t.Fatalf("potluck did not exit\n%s", p.Logs.String())
	}
	if got := p.Cmd.ProcessState.ExitCode(); got != code {
		t.Errorf("potluck exited with %d, want %d\n%s", got, code, p.Logs.String())
	}
}

// waitForItem waits for potluck's tray icon to register and returns its bus
// name.
func (d *xdesk) waitForItem(t *testing.T) string {
	t.Helper()
	var item string
	poll(t, 60*time.Second, "the tray icon to register", func() bool {
		v, err := d.bus.Object(watcherName, "/StatusNotifierWatcher").GetProperty(watcherName + ".RegisteredStatusNotifierItems")
		if err != nil {
			return false
		}
		items, _ := v.Value().([]string)
		if len(items) == 0 {
			return false
		}
		item, _, _ = strings.Cut(items[0], "/")
		return true
	})
	return item
}

type menuEntry struct {
	id    int32
	label string
}

// menu reads the item's dbusmenu, submenus flattened.
func (d *xdesk) menu(t *testing.T, item string) []menuEntry {
	t.Helper()
	obj := d.bus.Object(item, d.menuPath(t, item))
	get := func(id int32) dbusLayout {
		var rev uint32
		var layout dbusLayout
		err := obj.Call("com.canonical.dbusmenu.GetLayout", 0, id, int32(-1), []string{}).Store(&rev, &layout)
		if err != nil {
			t.Fatalf("GetLayout: %v", err)
		}
		return layout
	}
	var out []menuEntry
	var walk func(dbusLayout)
	walk = func(l dbusLayout) {
		if s, ok := l.Props["label"].Value().(string); ok && s != "" {
			out = append(out, menuEntry{l.ID, s})
		}
		if sub, _ := l.Props["children-display"].Value().(string); sub == "submenu" && len(l.Children) == 0 {
			// fyne.io/systray answers the first GetLayout one level deep.
			l = get(l.ID)
		}
		for _, c := range l.Children {
			var child dbusLayout
			if err := dbus.Store([]any{c.Value()}, &child); err == nil {
				walk(child)
			}
		}
	}
	walk(get(0))
	return out
}

func (d *xdesk) menuPath(t *testing.T, item string) dbus.ObjectPath {
	v, err := d.bus.Object(item, "/StatusNotifierItem").GetProperty("org.kde.StatusNotifierItem.Menu")
	if err != nil {
		t.Fatalf("Menu property: %v", err)
	}
	path, _ := v.Value().(dbus.ObjectPath)
	return path
}

type dbusLayout struct {
	ID       int32
	Props    map[string]dbus.Variant
	Children []dbus.Variant
}

// click clicks the menu item labelled label, as a tray host does.
func (d *xdesk) click(t *testing.T, item, label string) {
	t.Helper()
	for _, e := range d.menu(t, item) {
		if e.label == label {
			call := d.bus.Object(item, d.menuPath(t, item)).Call("com.canonical.dbusmenu.Event", 0, e.id, "clicked", dbus.MakeVariant(""), uint32(time.Now().Unix()))
			if call.Err != nil {
				t.Fatalf("clicking %q: %v", label, call.Err)
			}
			return
		}
	}
	t.Fatalf("no menu item %q", label)
}

func (d *xdesk) waitForLabel(t *testing.T, item string, ok func(string) bool) {
	t.Helper()
	poll(t, 30*time.Second, "the status line to change", func() bool {
		m := d.menu(t, item)
		return len(m) > 0 && ok(m[0].label)
	})
}

func (d *xdesk) xdotool(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("xdotool", args...)
	cmd.Env = append(os.Environ(), d.env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xdotool %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// window waits for a visible window with this title and returns its id.
func (d *xdesk) window(t *testing.T, title string) string {
	t.Helper()
	var id string
	poll(t, 30*time.Second, "the window "+title, func() bool {
		id = d.visibleWindow(title)
		return id != ""
	})
	return id
}

// visibleWindow is the id of a visible window with this title, or "".
func (d *xdesk) visibleWindow(title string) string {
	cmd := exec.Command("xdotool", "search", "--onlyvisible", "--name", "^"+title+"$")
	cmd.Env = append(os.Environ(), d.env...)
	out, _ := cmd.Output() // exit status 1: none
	id, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return id
}
