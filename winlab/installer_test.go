//go:build linux

package winlab

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// installerPrefix is a Wine prefix kept for the installer test (its first
// use takes about 20 s), so that the cached one other runs share is left
// alone.
func installerPrefix(t *testing.T) string {
	cache := os.Getenv("POTLUCK_DEV_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "potluck-dev")
	}
	return filepath.Join(cache, "wine", "prefix-installer")
}

// wine runs a Windows command line to its end in prefix and returns its
// output.
func wine(t *testing.T, prefix string, env []string, args ...string) (string, error) {
	t.Helper()
	wargs := []string{filepath.Join(Root(t), "scripts", "wine.sh"), "run", "-C", t.TempDir(), "--prefix", prefix}
	for _, e := range env {
		wargs = append(wargs, "--env", e)
	}
	wargs = append(wargs, "--")
	cmd := exec.Command("bash", append(wargs, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// potluck-setup.exe /S installs the program, its Start-menu entry, its
// uninstaller's registration and a firewall rule for the P2P port on
// private networks; the uninstaller removes all of it.
func TestWindowsInstaller(t *testing.T) {
	Need(t)
	setup := filepath.Join(Root(t), "dist", "potluck-setup.exe")
	if _, err := os.Stat(setup); err != nil {
		t.Fatalf("no installer at %s: make test-windows builds it (%v)", setup, err)
	}
	prefix := installerPrefix(t)
	// A first run creates the prefix; then netsh.exe becomes the recorder.
	if out, err := wine(t, prefix, nil, "cmd", "/c", "ver"); err != nil {
		t.Fatalf("prefix: %v\n%s", err, out)
	}
	netsh := filepath.Join(t.TempDir(), "netsh.exe")
	build := exec.Command("go", "build", "-o", netsh, "./winlab/testdata/netsh")
	build.Dir, build.Env = Root(t), append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the netsh recorder: %v\n%s", err, out)
	}
	data, _ := os.ReadFile(netsh)
	if err := os.WriteFile(filepath.Join(prefix, "drive_c", "windows", "system32", "netsh.exe"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "netsh.log")
	env := []string{"POTLUCK_NETSH_LOG=" + WinPath(log), "WINEDLLOVERRIDES=netsh.exe=n"}

	user := filepath.Join(prefix, "drive_c", "users", "root")
	dir := filepath.Join(user, "AppData", "Local", "Programs", "Potluck")
	link := filepath.Join(user, "AppData", "Roaming", "Microsoft", "Windows", "Start Menu", "Programs", "Potluck.lnk")
	const uninstallKey = `HKCU\Software\Microsoft\Windows\CurrentVersion\Uninstall\io.github.potluck_gpu.potluck`

	start := time.Now()
	if out, err := wine(t, prefix, env, setup, "/S"); err != nil {
		t.Fatalf("potluck-setup.exe /S: %v\n%s", err, out)
	}
	t.Logf("installed in %v", time.Since(start).Round(time.Millisecond))
	for _, f := range []string{filepath.Join(dir, "potluck.exe"), filepath.Join(dir, "uninstall.exe"), filepath.Join(dir, "LICENSE.txt"), link} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	if out, err := wine(t, prefix, nil, "reg", "query", uninstallKey, "/v", "DisplayName"); err != nil || !strings.Contains(out, "Potluck") {
		t.Errorf("the uninstaller is not registered: %v\n%s", err, out)
	}
	calls, _ := os.ReadFile(log)
	rule := `advfirewall firewall add rule name="Potluck (P2P)" dir=in action=allow program="C:\users\root\AppData\Local\Programs\Potluck\potluck.exe" protocol=TCP localport=4101 profile=private enable=yes`
	if !strings.Contains(string(calls), rule) {
		t.Errorf("the firewall rule was not added; netsh was called with:\n%s\nwant a line with:\n%s", calls, rule)
	}

	if out, err := wine(t, prefix, env, filepath.Join(dir, "uninstall.exe"), "/S", `_?=C:\users\root\AppData\Local\Programs\Potluck`); err != nil {
		t.Fatalf("uninstall.exe /S: %v\n%s", err, out)
	}
	// Run in place (_?=), the uninstaller cannot delete itself: the rest goes.
	for _, f := range []string{filepath.Join(dir, "potluck.exe"), filepath.Join(dir, "LICENSE.txt"), link} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("left after uninstalling: %s (%v)", f, err)
		}
	}
	if out, err := wine(t, prefix, nil, "reg", "query", uninstallKey); err == nil {
		t.Errorf("the uninstaller's registration stays:\n%s", out)
	}
	calls, _ = os.ReadFile(log)
	if lines := Lines(string(calls)); len(lines) == 0 || lines[len(lines)-1] != `advfirewall firewall delete rule name="Potluck (P2P)"` {
		t.Errorf("the firewall rule was not removed; netsh was called with:\n%s", calls)
	}
	os.RemoveAll(dir)
}
