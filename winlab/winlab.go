//go:build linux

// Package winlab runs Potluck's Windows program under Wine, on this Linux
// machine, as a Windows user would meet it: a node that fetches its
// llama.cpp and serves, a mixed pool of Linux and Windows nodes, the tray
// under Xvfb, and the installer. Its tests drive scripts/wine.sh; they run
// with POTLUCK_WINE=1 (make test-windows) and are skipped otherwise.
package winlab

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/internal/nodetest"
)

// Root is the repository's root folder.
func Root(t testing.TB) string {
	t.Helper()
	root, err := nodetest.ModuleRoot()
	if err != nil {
		t.Fatalf("%v", err)
	}
	return root
}

// Need skips the test unless the Wine harness is asked for (POTLUCK_WINE=1,
// as make test-windows sets).
func Need(t testing.TB) {
	t.Helper()
	if os.Getenv("POTLUCK_WINE") == "" {
		t.Skip("the Windows program runs under Wine with POTLUCK_WINE=1 (make test-windows)")
	}
}

// Exe is the Windows program the Makefile builds (make package-windows).
func Exe(t testing.TB) string {
	t.Helper()
	exe := filepath.Join(Root(t), "dist", "build", "windows", "potluck.exe")
	if _, err := os.Stat(exe); err != nil {
		t.Fatalf("no Windows program at %s: make test-windows builds it (%v)", exe, err)
	}
	return exe
}

// WinPath is a host path as the Windows program under Wine names it: the
// host's root is drive Z:.
func WinPath(p string) string {
	return `Z:` + strings.ReplaceAll(p, "/", `\`)
}

// Proc is a program running under Wine.
type Proc struct {
	Name      string // the program's file name
	Marker    string // a string only its command line has
	Leftovers string // the file scripts/wine.sh writes leftover programs to
	Logs      *nodetest.Logs
	proc      *nodetest.Proc // scripts/wine.sh, which runs the program
}

// Options for Start.
type Options struct {
	Dir     string   // working folder; default a temporary one
	Env     []string // NAME=VALUE for the Windows program
	Display string   // an X display of the host; "xvfb" for a private Xvfb
	// Marker is a string only this program's command line has (an API
	// address, a data folder), to find its Linux process by.
	Marker string
}

// Start runs exe with args under Wine. At the end of the test the program
// is stopped (SIGINT) if it still runs.
func Start(t testing.TB, exe string, opts Options, args ...string) *Proc {
	t.Helper()
	dir := opts.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	p := &Proc{Name: filepath.Base(exe), Marker: opts.Marker, Logs: &nodetest.Logs{}, Leftovers: filepath.Join(t.TempDir(), "leftovers")}
	wargs := []string{filepath.Join(Root(t), "scripts", "wine.sh"), "run", "-C", dir, "--leftovers", p.Leftovers}
	switch opts.Display {
	case "":
	case "xvfb":
		wargs = append(wargs, "--xvfb")
	default:
		wargs = append(wargs, "--display", opts.Display)
	}
	for _, e := range opts.Env {
		wargs = append(wargs, "--env", e)
	}
	wargs = append(wargs, "--", exe)
	wargs = append(wargs, args...)
	var err error
	if p.proc, err = nodetest.Exec(p.Name, exec.Command("bash", wargs...), p.Logs); err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if !p.Exited() {
			p.Interrupt(t)
			if !p.Wait(30 * time.Second) {
				p.proc.Kill()
			}
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", p.Name, p.Logs.String())
		}
	})
	return p
}

// Wait waits up to d for the run to end.
func (p *Proc) Wait(d time.Duration) bool {
	select {
	case <-p.proc.Exited():
		return true
	case <-time.After(d):
		return false
	}
}

// Exited says whether the run has ended.
func (p *Proc) Exited() bool { return !p.proc.Running() }

// ExitCode is the program's exit status, once it has ended.
func (p *Proc) ExitCode() int {
	<-p.proc.Exited()
	return p.proc.Cmd.ProcessState.ExitCode()
}

// Left is what the program left running when it ended (one command line a
// line), once it has ended.
func (p *Proc) Left() string {
	<-p.proc.Exited()
	data, _ := os.ReadFile(p.Leftovers)
	return strings.TrimSpace(string(data))
}

// PID is the Linux process that is the Windows program: Wine runs each
// Windows process as a Linux one whose command line is the Windows one.
// It is looked up among the run's processes by the program's name and
// Marker.
func (p *Proc) PID(t testing.TB) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if pid := findPID(p.Name, p.Marker); pid > 0 {
			return pid
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no process of %s with %q in its command line", p.Name, p.Marker)
	return 0
}

func findPID(name, marker string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cl := string(bytes.ReplaceAll(data, []byte{0}, []byte{' '}))
		if strings.Contains(strings.ToLower(cl), strings.ToLower(name)) && strings.Contains(cl, marker) &&
			!strings.Contains(cl, "wine.sh") && !strings.Contains(cl, "unshare") && !strings.HasPrefix(cl, "/bin/sh") {
			return pid
		}
	}
	return 0
}

// Interrupt sends SIGINT to the Windows program, which Wine hands to it as
// a console control event (CTRL_C_EVENT): Go's os/signal sees
// os.Interrupt.
func (p *Proc) Interrupt(t testing.TB) {
	t.Helper()
	if pid := findPID(p.Name, p.Marker); pid > 0 {
		syscall.Kill(pid, syscall.SIGINT)
	}
}

// WaitFor polls f until it says done, for up to d.
func WaitFor(t testing.TB, what string, d time.Duration, f func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for ctx.Err() == nil {
		if f() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
}

// Lines is s's non-empty lines.
func Lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}
