package tray

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestAutostartPath(t *testing.T) {
	for _, tc := range []struct{ goos, home, xdg, want string }{
		{"linux", "/home/ann", "", "/home/ann/.config/autostart/potluck.desktop"},
		{"linux", "/home/ann", "/home/ann/.xdg", "/home/ann/.xdg/autostart/potluck.desktop"},
		{"linux", "/home/ann", "relative", "/home/ann/.config/autostart/potluck.desktop"}, // the spec ignores relative paths
		{"freebsd", "/home/ann", "", "/home/ann/.config/autostart/potluck.desktop"},
		{"darwin", "/Users/ann", "", "/Users/ann/Library/LaunchAgents/io.github.potluck_gpu.potluck.plist"},
		{"windows", `C:\Users\ann`, "", ""},
	} {
		if got := autostartPath(tc.goos, tc.home, tc.xdg); got != filepath.FromSlash(tc.want) {
			t.Errorf("autostartPath(%s, %s, %q) = %q, want %q", tc.goos, tc.home, tc.xdg, got, tc.want)
		}
	}
}

func TestDesktopEntry(t *testing.T) {
	for _, tc := range []struct {
		args []string
		exec string
	}{
		{[]string{"/usr/bin/potluck"}, "Exec=/usr/bin/potluck\n"},
		{[]string{"/opt/My Apps/potluck", "--data-dir", "/home/ann/pot luck"}, `Exec="/opt/My Apps/potluck" --data-dir "/home/ann/pot luck"` + "\n"},
		{[]string{"/usr/bin/potluck", "--name", `ann's "big" $box`}, `Exec=/usr/bin/potluck --name "ann's \\"big\\" \\$box"` + "\n"},
		{[]string{`/weird\dir/potluck`}, `Exec="/weird\\\\dir/potluck"` + "\n"},
		{[]string{"/usr/bin/potluck", "--name", "100%"}, "Exec=/usr/bin/potluck --name 100%%\n"},
		{[]string{"/usr/bin/potluck", ""}, `Exec=/usr/bin/potluck ""` + "\n"},
	} {
		got, err := autostartContent("linux", autostartCommand{Exe: tc.args[0], Args: tc.args[1:]})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(got, "\n"+tc.exec) {
			t.Errorf("%q: entry\n%s\nlacks %q", tc.args, got, tc.exec)
		}
		if !strings.HasPrefix(got, "[Desktop Entry]\nType=Application\nName=Potluck\n") {
			t.Errorf("entry does not start as a desktop entry:\n%s", got)
		}
	}
	if _, err := desktopEntry(autostartCommand{Exe: "/bin/pot\nluck"}); err == nil {
		t.Error("a line break in the command was accepted")
	}
}

func TestLaunchAgent(t *testing.T) {
	got, _ := autostartContent("darwin", autostartCommand{Exe: "/Applications/Potluck.app/Contents/MacOS/potluck", Args: []string{"--name", "Tom & Jerry's <Mac>"}})
	for _, want := range []string{
		"<key>Label</key>\n\t<string>io.github.potluck_gpu.potluck</string>",
		"\t\t<string>/Applications/Potluck.app/Contents/MacOS/potluck</string>\n\t\t<string>--name</string>\n\t\t<string>Tom &amp; Jerry&#39;s &lt;Mac&gt;</string>\n\t</array>",
		"<key>RunAtLoad</key>\n\t<true/>",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("plist lacks %q:\n%s", want, got)
		}
	}
}

func TestWindowsCommandLine(t *testing.T) {
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{`C:\Program Files\Potluck\potluck.exe`}, `"C:\Program Files\Potluck\potluck.exe"`},
		{[]string{`C:\Potluck\potluck.exe`, "--data-dir", `C:\Users\ann\pot luck\`}, `C:\Potluck\potluck.exe --data-dir "C:\Users\ann\pot luck\\"`},
		{[]string{`potluck.exe`, `say "hi"`, ""}, `potluck.exe "say \"hi\"" ""`},
		{[]string{`potluck.exe`, `a\\"b`}, `potluck.exe "a\\\\\"b"`},
	} {
		if got := windowsCommandLine(tc.words); got != tc.want {
			t.Errorf("windowsCommandLine(%q) = %s, want %s", tc.words, got, tc.want)
		}
	}
}

func TestFileAutostart(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the registry is used on Windows")
	}
	home := t.TempDir()
	env := map[string]string{"HOME": home}
	a, err := newAutostart(func(k string) string { return env[k] }, autostartCommand{Exe: "/usr/bin/potluck"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Enabled() {
		t.Fatal("enabled before being turned on")
	}
	if err := a.SetEnabled(true); err != nil {
		t.Fatal(err)
	}
	path := autostartPath(runtime.GOOS, home, "")
	b, err := os.ReadFile(path)
	if err != nil || !a.Enabled() {
		t.Fatalf("after turning it on: %v, enabled %v", err, a.Enabled())
	}
	if !strings.Contains(string(b), "/usr/bin/potluck") {
		t.Errorf("entry:\n%s", b)
	}
	if err := a.SetEnabled(false); err != nil || a.Enabled() {
		t.Fatalf("after turning it off: %v, enabled %v", err, a.Enabled())
	}
	if err := a.SetEnabled(false); err != nil {
		t.Errorf("turning it off twice: %v", err)
	}
	if _, err := newAutostart(func(string) string { return "" }, autostartCommand{Exe: "/usr/bin/potluck"}); err == nil {
		t.Error("no error without HOME")
	}
}

func TestStartAtLoginItem(t *testing.T) {
	h := newHarness(t)
	h.u.login = &fakeLogin{}
	h.u.updateMenu()
	if h.u.items.login.Disabled || h.u.items.login.Checked {
		t.Fatalf("login item disabled %v checked %v", h.u.items.login.Disabled, h.u.items.login.Checked)
	}
	h.u.items.login.Action()
	if !h.u.items.login.Checked {
		t.Error("Start at login not checked after a click")
	}
	h.u.items.login.Action()
	if h.u.items.login.Checked {
		t.Error("Start at login still checked after a second click")
	}
}

type fakeLogin struct{ on bool }

func (f *fakeLogin) Enabled() bool            { return f.on }
func (f *fakeLogin) SetEnabled(on bool) error { f.on = on; return nil }
