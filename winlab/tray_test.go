//go:build linux

package winlab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/internal/nodetest"
)

// xvfb starts a virtual display for the test and returns its name (":N").
func xvfb(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("Xvfb"); err != nil {
		t.Fatal("Xvfb is missing: make wine-setup installs xvfb")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", "1280x800x24", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 16)
	r.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := r.Read(buf)
	r.Close()
	if err != nil {
		t.Fatalf("Xvfb did not start: %v", err)
	}
	return ":" + strings.TrimSpace(string(buf[:n]))
}

// displayState says whether display answers, and what its socket is, for
// a failure to read.
func displayState(display string) string {
	cmd := exec.Command("xdotool", "getdisplaygeometry")
	cmd.Env = append(os.Environ(), "DISPLAY="+display)
	out, err := cmd.CombinedOutput()
	sock, serr := os.Stat("/tmp/.X11-unix/X" + strings.TrimPrefix(display, ":"))
	st := fmt.Sprintf("%s answers %q (err %v)", display, strings.TrimSpace(string(out)), err)
	if serr != nil {
		return st + "; its socket: " + serr.Error()
	}
	return st + "; its socket: " + sock.Mode().String()
}

// x runs an X tool (xdotool, import) on display.
func x(t *testing.T, display string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "DISPLAY="+display)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

type geometry struct{ x, y, w, h int }

// windows lists the visible windows of a class on display.
func windows(t *testing.T, display, class string) []geometry {
	t.Helper()
	cmd := exec.Command("xdotool", "search", "--onlyvisible", "--class", class)
	cmd.Env = append(os.Environ(), "DISPLAY="+display)
	out, _ := cmd.Output()
	var gs []geometry
	for _, id := range Lines(string(out)) {
		var g geometry
		for _, l := range Lines(x(t, display, "xdotool", "getwindowgeometry", "--shell", id)) {
			k, v, _ := strings.Cut(l, "=")
			n, _ := strconv.Atoi(v)
			switch k {
			case "X":
				g.x = n
			case "Y":
				g.y = n
			case "WIDTH":
				g.w = n
			case "HEIGHT":
				g.h = n
			}
		}
		gs = append(gs, g)
	}
	return gs
}

// The tray on Windows: under Xvfb, Wine's notification area shows
// Potluck's icon; its menu opens on a click, Share this computer shares,
// and Quit stops the node with nothing left running.
func TestWindowsTray(t *testing.T) {
	Need(t)
	srv, b := windowsReleases(t)
	display := xvfb(t)
	addr := freeAddr(t)
	data, cache := t.TempDir(), t.TempDir()
	start := func() *Proc {
		// Wine's errors (not its fixmes) in the output, for a failure to read.
		return Start(t, Exe(t), Options{Marker: addr, Display: display, Env: []string{"POTLUCK_P2P_DISABLE_PORT_MAP=1", "WINEDEBUG=err+all,fixme-all"}},
			"--api", addr, "--data-dir", WinPath(data), "--llama-cache", WinPath(cache), "--releases", srv.URL, "--llama-version", b.Version,
			"--no-dht", "--no-mdns", "--p2p-listen", "/ip4/127.0.0.1/tcp/0")
	}
	p := start()
	// Wine starts its desktop (explorer.exe) with the first window a run
	// makes; on a busy machine that can lose a race, the window is not
	// made, and the tray's toolkit gives up. That is Wine's, not
	// Potluck's: start again, on a new display in case the first went
	// wrong, up to three times in all.
	up := func() bool { var st status; return nodetest.GetJSON("http://"+addr+"/api/status", &st) == nil }
	for try := 1; ; try++ {
		WaitFor(t, "the tray's API, or its end", time.Minute, func() bool { return up() || p.Exited() })
		if up() || !p.Exited() || !strings.Contains(p.Logs.String(), "Failed to create helper window") || try == 3 {
			break
		}
		t.Logf("Wine made no window for start %d (its desktop was not up); starting again on a new display. The display: %s. Its output:\n%s",
			try, displayState(display), p.Logs.String())
		time.Sleep(5 * time.Second)
		display = xvfb(t)
		p = start()
	}
	n := &WinNode{Proc: p, API: "http://" + addr, Data: data}
	WaitFor(t, "the tray's node with llama.cpp", 4*time.Minute, func() bool {
		var st status
		return nodetest.GetJSON(n.API+"/api/status", &st) == nil && st.Engine.Available && st.Engine.Provisioning == nil
	})

	// The notification area: a window of Wine's explorer.exe holding the icon.
	var icon geometry
	WaitFor(t, "the tray icon", time.Minute, func() bool {
		for _, g := range windows(t, display, "explorer.exe") {
			if g.h > 0 && g.h < 64 && g.w < 400 {
				icon = g
				return true
			}
		}
		return false
	})
	time.Sleep(3 * time.Second) // the menu shows the status as the tray polls it
	before := len(windows(t, display, "potluck.exe"))
	openMenu := func() {
		x(t, display, "xdotool", "mousemove", strconv.Itoa(icon.x+10), strconv.Itoa(icon.y+icon.h/2), "click", "1")
		WaitFor(t, "the tray menu", 20*time.Second, func() bool { return len(windows(t, display, "potluck.exe")) > before })
		time.Sleep(500 * time.Millisecond)
	}
	openMenu()
	shot := filepath.Join(t.TempDir(), "windows-tray-menu.png")
	x(t, display, "import", "-window", "root", "-crop", "560x330+0+0", shot)
	if dir := os.Getenv("POTLUCK_WINE_SHOTS"); dir != "" {
		data, _ := os.ReadFile(shot)
		os.WriteFile(filepath.Join(dir, "windows-tray-menu.png"), data, 0o644)
	}
	// The first item is the status line; the second, Share this computer.
	x(t, display, "xdotool", "key", "Down", "Down", "Return")
	st := n.WaitStatus(t, "sharing after the click", time.Minute, func(st status) bool { return st.Share != "" && st.Share != "off" })
	t.Logf("after Share this computer: share %s, state %s", st.Share, st.State)

	// Quit, the menu's last item.
	openMenu()
	x(t, display, "xdotool", "key", "Up", "Return")
	if !p.Wait(60 * time.Second) {
		t.Fatal("the tray did not quit within 60 s")
	}
	if code, left := p.ExitCode(), p.Left(); code != 0 || left != "" {
		t.Errorf("after Quit: exit code %d, left running %q", code, left)
	}
	fmt.Fprintln(os.Stderr, "tray menu screenshot:", shot)
}
