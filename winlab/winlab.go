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
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Root is the repository's root folder.
func Root(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
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

// Buffer is an io.Writer safe for concurrent use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Proc is a program running under Wine.
type Proc struct {
	Name      string // the program's file name
	Marker    string // a string only its command line has
	Leftovers string // the file scripts/wine.sh writes leftover programs to
	Logs      *Buffer
	cmd       *exec.Cmd
	exited    chan struct{}
	err       error
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
	p := &Proc{Logs: &Buffer{}, exited: make(chan struct{}), Leftovers: filepath.Join(t.TempDir(), "leftovers")}
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
	p.cmd = exec.Command("bash", wargs...)
	p.cmd.Stdout, p.cmd.Stderr = p.Logs, p.Logs
	p.Name, p.Marker = filepath.Base(exe), opts.Marker
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.Interrupt(t)
			if !p.Wait(30 * time.Second) {
				p.cmd.Process.Kill()
				<-p.exited
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
	case <-p.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// Exited says whether the run has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// ExitCode is the program's exit status, once it has ended.
func (p *Proc) ExitCode() int {
	<-p.exited
	return p.cmd.ProcessState.ExitCode()
}

// Left is what the program left running when it ended (one command line a
// line), once it has ended.
func (p *Proc) Left() string {
	<-p.exited
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

// GetJSON decodes GET url into v.
func GetJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// PostJSON posts body to url and decodes the answer into v (if not nil).
func PostJSON(url, body string, v any) error {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s: %s", url, resp.Status, msg)
	}
	if v != nil {
		return json.NewDecoder(resp.Body).Decode(v)
	}
	return nil
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
