package nodetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Proc is a process the harness started: a node, or a helper a test runs
// beside one.
type Proc struct {
	Name string    // names it in messages
	Cmd  *exec.Cmd // Cmd.ProcessState is set once it has exited
	Logs *Logs     // its output, unless Cmd had a writer of its own

	exited chan struct{}
	err    error
}

// Exec starts cmd, which dies with the test process where the system can
// arrange it. Its output goes to logs (a new Logs when nil) unless cmd has
// writers of its own; name names it in messages (default: the program's
// file name).
func Exec(name string, cmd *exec.Cmd, logs *Logs) (*Proc, error) {
	if name == "" {
		name = filepath.Base(cmd.Path)
	}
	if logs == nil {
		logs = &Logs{}
	}
	if cmd.Stdout == nil {
		cmd.Stdout = logs
	}
	if cmd.Stderr == nil {
		cmd.Stderr = logs
	}
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Logs: logs, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Running says whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Err is how the process ended (exec.Cmd.Wait's error), once it has.
func (p *Proc) Err() error {
	<-p.exited
	return p.err
}

// PID is the process id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Poll asks cond every interval until it holds; it gives up when the
// process exits or ctx ends.
func (p *Proc) Poll(ctx context.Context, every time.Duration, what string, cond func() bool) error {
	for !cond() {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited (%v) while waiting for %s", p.Name, p.err, what)
		case <-ctx.Done():
			return fmt.Errorf("%s: timed out waiting for %s: %w", p.Name, what, ctx.Err())
		case <-time.After(every):
		}
	}
	return nil
}

// Stop sends sig and waits up to grace for the process to exit; if it has
// not, it kills it and says so. A process that has exited already is left
// alone.
func (p *Proc) Stop(sig os.Signal, grace time.Duration) error {
	if !p.Running() {
		return nil
	}
	_ = p.Cmd.Process.Signal(sig)
	select {
	case <-p.exited:
		return nil
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("%s did not stop within %v of %v", p.Name, grace, sig)
	}
}

// Kill kills the process and waits for it to exit.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.exited
}

// Logs keeps what a process printed, for the test to read while it runs:
// every line, or with Max set only the last Max lines. The zero Logs keeps
// everything. It is safe for concurrent use.
type Logs struct {
	Max int // lines kept; 0 keeps all

	mu      sync.Mutex
	lines   []string
	quiet   []string // lines without the API's request lines
	partial []byte
}

// Write adds p; lines are kept as they complete.
func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := slices.Index(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.lines = l.keep(append(l.lines, line))
		if !strings.Contains(line, "msg=request ") {
			l.quiet = l.keep(append(l.quiet, line))
		}
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

// keep trims lines to the last Max, copying now and then so that the
// backing array does not grow without end.
func (l *Logs) keep(lines []string) []string {
	if l.Max > 0 && len(lines) > 2*l.Max {
		return slices.Clone(lines[len(lines)-l.Max:])
	}
	return lines
}

// String is everything kept, with a line not yet ended.
func (l *Logs) String() string { return l.Last(0) }

// Last is the last n lines kept (all for n <= 0), with a line not yet
// ended.
func (l *Logs) Last(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, line := range tail(l.lines, n, l.Max) {
		b.WriteString(line)
		b.WriteByte('\n')
	}
	b.Write(l.partial)
	return b.String()
}

// Quiet is the last n lines (all for n <= 0) without the API's request
// lines, which a test's own polling fills the log with.
func (l *Logs) Quiet(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(tail(l.quiet, n, l.Max), "\n")
}

// tail is the last n of lines, and never more than max (if set).
func tail(lines []string, n, max int) []string {
	if max > 0 && (n <= 0 || n > max) {
		n = max
	}
	if n <= 0 || n >= len(lines) {
		return lines
	}
	return lines[len(lines)-n:]
}
