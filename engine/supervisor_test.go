package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/sandbox"
)

// The test binary doubles as the supervised child: TestMain runs the mode
// named in POTLUCK_TEST_CHILD instead of the tests.
func TestMain(m *testing.M) {
	// The test binary is the sandbox's launcher for the confined tests.
	sandbox.LaunchOrExit()
	if mode := os.Getenv("POTLUCK_TEST_CHILD"); mode != "" {
		os.Exit(testChild(mode))
	}
	os.Exit(m.Run())
}

func testChild(mode string) int {
	if f := os.Getenv("PIDFILE"); f != "" {
		_ = os.WriteFile(f, []byte(strconv.Itoa(os.Getpid())), 0o600)
	}
	switch mode {
	case "crash":
		fmt.Fprintln(os.Stderr, "fatal: the model file is corrupt")
		return 3
	case "sleep":
		time.Sleep(60 * time.Second)
		return 0
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
	case "slow-load":
		// Loading a large model: busy for seconds, then serving.
		x := uint64(1)
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
			for range 1 << 16 {
				x = x*6364136223846793005 + 1442695040888963407
			}
		}
		if x == 0 {
			return 6
		}
	case "serve-then-exit", "serve", "serve-then-grow":
	default:
		return 2
	}
	if mode == "serve" {
		// A grandchild in the same process group, to check nothing survives.
		gc := exec.Command(os.Args[0])
		gc.Env = append(os.Environ(), "POTLUCK_TEST_CHILD=sleep", "PIDFILE="+os.Getenv("PIDFILE")+".grandchild")
		if err := gc.Start(); err != nil {
			return 4
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 5
	}
	defer l.Close()
	fmt.Println("listening")
	if mode == "serve-then-grow" {
		// Join the memory cgroup, then take ever more memory until the
		// out-of-memory killer steps in (or 10s pass: it did not).
		if err := os.WriteFile(os.Getenv("CGROUP_PROCS"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 7
		}
		var held [][]byte
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			held = append(held, b)
		}
		fmt.Fprintln(os.Stderr, "still alive holding", len(held), "MiB")
		return 8
	}
	if mode == "serve-then-exit" {
		time.Sleep(200 * time.Millisecond)
		fmt.Fprintln(os.Stderr, "remote RPC server crashed")
		return 134 - 128
	}
	time.Sleep(60 * time.Second)
	return 0
}

// childSpec runs the test binary in mode, ready when its port accepts.
func childSpec(t *testing.T, mode string) (Spec, string) {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(t.TempDir(), "pid")
	addr := "127.0.0.1:" + strconv.Itoa(port)
	return Spec{
		Name: "child-" + mode,
		Command: func(ctx context.Context) (*exec.Cmd, error) {
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "POTLUCK_TEST_CHILD="+mode, "PORT="+strconv.Itoa(port), "PIDFILE="+pidfile)
			return cmd, nil
		},
		Ready: func(ctx context.Context) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			return c.Close()
		},
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond,
	}, pidfile
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			pid, err := strconv.Atoi(string(b))
			if err == nil {
				return pid
			}
		}
	}
	t.Fatalf("no pid in %s", path)
	return 0
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !alive(pid) {
			return
		}
	}
	t.Errorf("process %d still running", pid)
}

// A child that keeps working is not killed for taking longer than
// ReadyTimeout; one that sits idle is.
func TestSupervisorReadinessByProgress(t *testing.T) {
	spec, _ := childSpec(t, "slow-load")
	spec.ReadyTimeout = time.Second
	s := NewSupervisor(spec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go s.Run(ctx)
	upCtx, upCancel := context.WithTimeout(ctx, 20*time.Second)
	defer upCancel()
	start := time.Now()
	if err := s.Up(upCtx); err != nil {
		t.Fatalf("a child busy loading for 3 s with a 1 s ReadyTimeout: %v", err)
	}
	if took := time.Since(start); took < 2*time.Second || s.Status().Starts != 1 {
		t.Errorf("ready after %s and %d starts: want one start, after the 3 s load", took, s.Status().Starts)
	}
	cancel()

	if underWine() {
		t.Log("under Wine, a sleeping child is charged CPU time: its idling cannot be seen")
		return
	}
	idle, _ := childSpec(t, "sleep")
	idle.ReadyTimeout, idle.MaxStarts = time.Second, 1
	s2 := NewSupervisor(idle)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	start = time.Now()
	err := s2.Run(ctx2)
	if err == nil || !strings.Contains(err.Error(), "idle for 1s") || time.Since(start) > 10*time.Second {
		t.Errorf("an idle child: %v after %s, want it stopped for idling", err, time.Since(start))
	}
}

func TestSupervisorGivesUpOnCrashLoop(t *testing.T) {
	spec, _ := childSpec(t, "crash")
	spec.MaxStarts, spec.Window = 3, time.Minute
	s := NewSupervisor(spec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.Run(ctx)
	var gu *GiveUpError
	if !errors.As(err, &gu) {
		t.Fatalf("Run = %v, want *GiveUpError", err)
	}
	if gu.Starts != 3 {
		t.Errorf("starts = %d, want 3", gu.Starts)
	}
	if !strings.Contains(err.Error(), "fatal: the model file is corrupt") {
		t.Errorf("error lacks the child's stderr: %v", err)
	}
	if st := s.Status(); st.State != StateFailed || st.Starts != 3 {
		t.Errorf("status = %+v, want failed after 3 starts", st)
	}
	if err := s.Up(ctx); err == nil || !strings.Contains(err.Error(), "giving up") {
		t.Errorf("Up after give-up = %v", err)
	}
}

func TestSupervisorKillsChildIgnoringSIGTERM(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no SIGTERM: a child is ended at once, whatever it would ignore")
	}
	spec, pidfile := childSpec(t, "ignore-term")
	spec.StopGrace = 500 * time.Millisecond
	s := NewSupervisor(spec)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	upCtx, upCancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer upCancel()
	if err := s.Up(upCtx); err != nil {
		t.Fatal(err)
	}
	pid := readPID(t, pidfile)
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if el := time.Since(start); el < spec.StopGrace {
		t.Errorf("stopped after %s, before the %s grace", el, spec.StopGrace)
	}
	waitGone(t, pid)
}

func TestSupervisorCancelLeavesNothingRunning(t *testing.T) {
	spec, pidfile := childSpec(t, "serve")
	s := NewSupervisor(spec)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	upCtx, upCancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer upCancel()
	if err := s.Up(upCtx); err != nil {
		t.Fatal(err)
	}
	pid, grandchild := readPID(t, pidfile), readPID(t, pidfile+".grandchild")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if st := s.Status(); st.State != StateStopped {
		t.Errorf("state = %v, want stopped", st.State)
	}
	waitGone(t, pid)
	waitGone(t, grandchild)
}

func TestSupervisorRestartsAndAsksExited(t *testing.T) {
	spec, _ := childSpec(t, "serve-then-exit")
	var exits []string
	spec.Exited = func(err error, tail []string) bool {
		exits = append(exits, err.Error())
		return len(exits) < 2 // restart once, then stop
	}
	s := NewSupervisor(spec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "remote RPC server crashed") {
		t.Fatalf("Run = %v, want the exit with its output", err)
	}
	if len(exits) != 2 || s.Status().Starts != 2 {
		t.Errorf("exits = %d, starts = %d, want 2 and 2", len(exits), s.Status().Starts)
	}
}

func TestRing(t *testing.T) {
	r := NewRing(3)
	fmt.Fprint(r, "a\nb\nc")
	if got := strings.Join(r.Last(5), ","); got != "a,b" {
		t.Errorf("Last = %q, want a,b (c unfinished)", got)
	}
	fmt.Fprint(r, "\nd\ne\n")
	if got := strings.Join(r.Last(5), ","); got != "c,d,e" {
		t.Errorf("Last = %q, want c,d,e", got)
	}
	if got := strings.Join(r.Last(2), ","); got != "d,e" {
		t.Errorf("Last(2) = %q", got)
	}
}
