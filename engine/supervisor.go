package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync"
	"time"
)

// State is where a supervised child is in its life.
type State int

const (
	StateStopped  State = iota // not started, or stopped for good
	StateStarting              // started, waiting for readiness
	StateReady                 // passed its readiness check
	StateBackoff               // exited; waiting before the next start
	StateFailed                // gave up restarting
)

func (s State) String() string {
	switch s {
	case StateStopped:
		return "stopped"
	case StateStarting:
		return "starting"
	case StateReady:
		return "ready"
	case StateBackoff:
		return "restarting"
	case StateFailed:
		return "failed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// MarshalText makes State readable in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Spec describes one supervised child.
type Spec struct {
	Name string // for logs and errors, e.g. "llama-server"
	// Command builds a fresh, unstarted command for each start. The
	// supervisor owns its context, stdout and stderr.
	Command func(ctx context.Context) (*exec.Cmd, error)
	// Ready is one readiness check; it is polled until it returns nil.
	Ready func(ctx context.Context) error

	// ReadyTimeout is how long a start may go without progress: a child
	// that keeps working (CPU time, bytes read or written: a model
	// loading, weights going to workers) is never killed for being slow.
	// Default 2m. Where progress cannot be seen, it bounds the start.
	ReadyTimeout time.Duration
	// ReadyLimit bounds a start however it progresses; default 1h.
	ReadyLimit   time.Duration
	StopGrace    time.Duration // SIGTERM to SIGKILL; default 5s
	MinBackoff   time.Duration // first restart delay; default 500ms
	MaxBackoff   time.Duration // default 30s
	HealthyAfter time.Duration // a run this long resets the backoff; default 30s
	MaxStarts    int           // give up after this many starts ...
	Window       time.Duration // ... within this window; defaults 5 in 2m

	// Exited, when set, is told of every exit and decides whether the
	// supervisor restarts the child. Returning false makes Run return the
	// exit as its error.
	Exited func(err error, tail []string) (restart bool)

	Log     *slog.Logger // optional
	LogFile string       // optional; child output is appended here, rotated

	// Env is extra environment for the child, after what Command set
	// (e.g. the variables that show a test a software Vulkan device).
	Env []string
}

func (s *Spec) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&s.ReadyTimeout, 2*time.Minute)
	def(&s.ReadyLimit, time.Hour)
	def(&s.StopGrace, 5*time.Second)
	def(&s.MinBackoff, 500*time.Millisecond)
	def(&s.MaxBackoff, 30*time.Second)
	def(&s.HealthyAfter, 30*time.Second)
	def(&s.Window, 2*time.Minute)
	if s.MaxStarts <= 0 {
		s.MaxStarts = 5
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
}

// Status is a snapshot of a supervised child.
type Status struct {
	State     State     `json:"state"`
	PID       int       `json:"pid,omitempty"`
	Starts    int       `json:"starts"`
	LastError string    `json:"last_error,omitempty"`
	Since     time.Time `json:"since"`
}

// GiveUpError is returned by Run when the child kept failing.
type GiveUpError struct {
	Name   string
	Starts int
	Window time.Duration
	Last   error
	Tail   []string
}

func (e *GiveUpError) Error() string {
	return fmt.Sprintf("%s failed %d times within %s, giving up: %v%s", e.Name, e.Starts, e.Window, e.Last, formatTail(e.Tail))
}

func (e *GiveUpError) Unwrap() error { return e.Last }

// Supervisor runs one child process and keeps it running.
type Supervisor struct {
	spec Spec
	out  *Ring

	mu      sync.Mutex
	status  Status
	changed chan struct{}
}

// NewSupervisor returns a supervisor for spec; nothing starts until Run.
func NewSupervisor(spec Spec) *Supervisor {
	spec.defaults()
	return &Supervisor{
		spec:    spec,
		out:     NewRing(200),
		status:  Status{State: StateStopped, Since: time.Now()},
		changed: make(chan struct{}),
	}
}

// Status returns the current status.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Changed returns a channel closed at the next status change.
func (s *Supervisor) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Tail returns the last n lines the child wrote.
func (s *Supervisor) Tail(n int) []string { return s.out.Last(n) }

func (s *Supervisor) set(f func(*Status)) {
	s.mu.Lock()
	prev := s.status.State
	f(&s.status)
	if s.status.State != prev {
		s.status.Since = time.Now()
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Up waits until the child is ready. It returns an error if the supervisor
// gave up or stopped, or when ctx ends first.
func (s *Supervisor) Up(ctx context.Context) error {
	for {
		ch := s.Changed()
		st := s.Status()
		switch st.State {
		case StateReady:
			return nil
		case StateFailed:
			return fmt.Errorf("%s failed: %s", s.spec.Name, st.LastError)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Run starts the child and restarts it with backoff until ctx is cancelled
// (it then stops the child and returns nil), the child fails too often
// (*GiveUpError), or Spec.Exited declines a restart.
func (s *Supervisor) Run(ctx context.Context) error {
	var starts []time.Time
	backoff := s.spec.MinBackoff
	for {
		if ctx.Err() != nil {
			s.set(func(st *Status) { st.State, st.PID = StateStopped, 0 })
			return nil
		}
		now := time.Now()
		starts = append(starts, now)
		for len(starts) > 0 && now.Sub(starts[0]) > s.spec.Window {
			starts = starts[1:]
		}
		began := time.Now()
		err := s.runOnce(ctx)
		if ctx.Err() != nil {
			s.set(func(st *Status) { st.State, st.PID = StateStopped, 0 })
			return nil
		}
		tail := s.out.Last(8)
		s.spec.Log.Warn("child exited", "name", s.spec.Name, "err", err)
		if s.spec.Exited != nil && !s.spec.Exited(err, tail) {
			s.set(func(st *Status) { st.State, st.PID, st.LastError = StateStopped, 0, err.Error() })
			return err
		}
		if len(starts) >= s.spec.MaxStarts {
			gu := &GiveUpError{Name: s.spec.Name, Starts: len(starts), Window: s.spec.Window, Last: err, Tail: tail}
			s.set(func(st *Status) { st.State, st.PID, st.LastError = StateFailed, 0, gu.Error() })
			return gu
		}
		if time.Since(began) >= s.spec.HealthyAfter {
			backoff = s.spec.MinBackoff
		}
		delay := jitter(backoff)
		backoff = min(2*backoff, s.spec.MaxBackoff)
		s.set(func(st *Status) { st.State, st.PID, st.LastError = StateBackoff, 0, err.Error() })
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// jitter spreads d over [0.75d, 1.25d) so restarts of many children do not
// line up.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2))
}

// runOnce starts the child, waits for readiness and then for its exit. It
// always returns a non-nil error describing why the child is gone, unless ctx
// was cancelled.
func (s *Supervisor) runOnce(ctx context.Context) error {
	childCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd, err := s.spec.Command(childCtx)
	if err != nil {
		return err
	}
	var w io.Writer = s.out
	if s.spec.LogFile != "" {
		if lf, err := openRotating(s.spec.LogFile, 10<<20); err == nil {
			defer lf.Close()
			w = io.MultiWriter(s.out, lf)
		} else {
			s.spec.Log.Warn("child log file", "path", s.spec.LogFile, "err", err)
		}
	}
	cmd.Stdout, cmd.Stderr = w, w
	if len(s.spec.Env) > 0 {
		if cmd.Env == nil {
			cmd.Env = os.Environ()
		}
		cmd.Env = append(cmd.Env, s.spec.Env...)
	}
	configureProcess(cmd, s.spec.StopGrace)
	s.set(func(st *Status) { st.State = StateStarting; st.Starts++ })
	ooms := oomKills()
	if err := cmd.Start(); err != nil {
		toContain.Delete(cmd)
		return fmt.Errorf("start %s: %w", s.spec.Name, err)
	}
	if err := afterStart(cmd); err != nil {
		s.spec.Log.Warn("the child may outlive Potluck", "name", s.spec.Name, "err", err)
	}
	s.set(func(st *Status) { st.PID = cmd.Process.Pid })
	s.spec.Log.Info("child started", "name", s.spec.Name, "pid", cmd.Process.Pid)
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		killGroup(cmd) // sweep anything the child left in its group
		exited <- err
	}()

	if err := s.awaitReady(childCtx, cmd.Process.Pid, exited, ooms); err != nil {
		cancel()
		var early *earlyExit
		if !errors.As(err, &early) {
			<-exited
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	s.set(func(st *Status) { st.State, st.LastError = StateReady, "" })
	s.spec.Log.Info("child ready", "name", s.spec.Name)
	werr := <-exited
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%s exited (%s)%s", s.spec.Name, exitReason(werr, ooms), formatTail(s.out.Last(8)))
}

// earlyExit is the child exiting before it became ready.
type earlyExit struct {
	name, reason string
	tail         []string
}

func (e *earlyExit) Error() string {
	return fmt.Sprintf("%s exited before it was ready (%s)%s", e.name, e.reason, formatTail(e.tail))
}

func (s *Supervisor) awaitReady(ctx context.Context, pid int, exited <-chan error, ooms int64) error {
	start := time.Now()
	limit := time.NewTimer(s.spec.ReadyLimit)
	defer limit.Stop()
	// Often: a request may be waiting for it (a model loaded on request).
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last, _ := procProgress(pid)
	moved, checked := start, start
	for {
		checkCtx, cancel := context.WithTimeout(ctx, time.Second)
		err := s.spec.Ready(checkCtx)
		cancel()
		if err == nil {
			return nil
		}
		now := time.Now()
		if now.Sub(checked) >= time.Second {
			checked = now
			if p, ok := procProgress(pid); ok && p != last {
				last, moved = p, now
			}
		}
		if now.Sub(moved) > s.spec.ReadyTimeout {
			return fmt.Errorf("%s not ready after %s, and idle for %s: %v%s", s.spec.Name, now.Sub(start).Round(time.Second),
				s.spec.ReadyTimeout, err, formatTail(s.out.Last(8)))
		}
		select {
		case werr := <-exited:
			return &earlyExit{name: s.spec.Name, reason: exitReason(werr, ooms), tail: s.out.Last(8)}
		case <-ctx.Done():
			return ctx.Err()
		case <-limit.C:
			return fmt.Errorf("%s not ready after %s: %v%s", s.spec.Name, s.spec.ReadyLimit, err, formatTail(s.out.Last(8)))
		case <-tick.C:
		}
	}
}

// exitReason says how a child ended; ooms is the kernel's count of
// out-of-memory kills from before it started.
func exitReason(err error, ooms int64) string {
	if err == nil {
		return "exit status 0"
	}
	if oomKilled(err, ooms) {
		return "killed by the out-of-memory killer: it needed more memory than the system, or its memory limit, would give"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ProcessState.String()
	}
	return err.Error()
}

func formatTail(tail []string) string {
	if len(tail) == 0 {
		return ""
	}
	s := "; last output:"
	for _, l := range tail {
		s += "\n  " + l
	}
	return s
}
