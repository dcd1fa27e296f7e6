package nodetest

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// Config says how to start a node. The zero Config is `potluck run` on a
// free loopback port with one llama.cpp thread, a 512-token context and
// debug logs, in an environment where it asks no router for a port.
type Config struct {
	Bin  string // the program; "" is the one Build makes
	Name string // names the node in messages; default "potluck"
	// Addr is the host:port its API listens on; "" picks a free port on
	// 127.0.0.1.
	Addr string
	// DataDir is its --data-dir; Start makes a temporary one when it is
	// "", Launch needs it.
	DataDir string
	// Threads and LogLevel are its --threads (default 1) and --log-level
	// (default debug).
	Threads  int
	LogLevel string
	// Args follow `run` and the flags above.
	Args []string
	// Command, when not nil, is the whole command line instead of `run`
	// and its flags: empty starts the tray, which reads its API address
	// and data dir from Env.
	Command []string
	// Env is the whole environment; nil is Environ().
	Env []string
	// Logs takes its output; nil makes a new Logs that keeps everything.
	Logs *Logs

	// Wait bounds WaitStatus (default a minute) and Poll is how often it
	// asks (default 100ms).
	Wait, Poll time.Duration
	// Grace is how long the end of a test waits after SIGINT before it
	// kills the node and fails the test (default 15s); a negative Grace
	// kills it at once.
	Grace time.Duration
}

// Environ is the environment a node gets by default: the test's, where
// nothing asks the machine's router for a port.
func Environ() []string {
	return append(os.Environ(), "POTLUCK_P2P_DISABLE_PORT_MAP=1")
}

// FreeAddr is a TCP address on 127.0.0.1 that was free a moment ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// args is the node's command line after the program.
func (c Config) args() []string {
	if c.Command != nil {
		return c.Command
	}
	threads, level := c.Threads, c.LogLevel
	if threads == 0 {
		threads = 1
	}
	if level == "" {
		level = "debug"
	}
	return append([]string{"run", "--api", c.Addr, "--data-dir", c.DataDir,
		"--threads", strconv.Itoa(threads), "--ctx-size", "512", "--log-level", level}, c.Args...)
}

// Node is a running potluck.
type Node struct {
	*Proc
	API     string // http://host:port
	Addr    string // host:port of the API
	DataDir string

	wait, poll time.Duration
}

// Launch starts a node as c says and returns without waiting for it; the
// caller stops it.
func Launch(c Config) (*Node, error) {
	if c.Bin == "" {
		bin, err := Build()
		if err != nil {
			return nil, err
		}
		c.Bin = bin
	}
	if c.Addr == "" {
		addr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		c.Addr = addr
	}
	if c.DataDir == "" && c.Command == nil {
		return nil, errors.New("nodetest: a node needs a data dir")
	}
	if c.Name == "" {
		c.Name = "potluck"
	}
	cmd := exec.Command(c.Bin, c.args()...)
	cmd.Env = c.Env
	if cmd.Env == nil {
		cmd.Env = Environ()
	}
	p, err := Exec(c.Name, cmd, c.Logs)
	if err != nil {
		return nil, err
	}
	n := &Node{Proc: p, API: "http://" + c.Addr, Addr: c.Addr, DataDir: c.DataDir, wait: c.Wait, poll: c.Poll}
	if n.wait == 0 {
		n.wait = time.Minute
	}
	if n.poll == 0 {
		n.poll = 100 * time.Millisecond
	}
	return n, nil
}

// Start starts a node for a test and waits until its API answers. When the
// test ends the node gets SIGINT, and the test fails if it lingers; a
// failed test logs the node's output.
func Start(t TB, c Config) *Node {
	t.Helper()
	n := StartNoWait(t, c)
	n.WaitStatus(t, "the API", func(map[string]any) bool { return true })
	return n
}

// StartNoWait is Start without waiting for the API: for a node that is
// meant to fail, or a tray that answers late.
func StartNoWait(t TB, c Config) *Node {
	t.Helper()
	if c.Bin == "" {
		c.Bin = Binary(t)
	}
	if c.DataDir == "" && c.Command == nil {
		c.DataDir = t.TempDir()
	}
	n, err := Launch(c)
	if err != nil {
		t.Fatalf("%v", err)
	}
	grace := c.Grace
	if grace == 0 {
		grace = 15 * time.Second
	}
	t.Cleanup(func() {
		if grace < 0 {
			n.Kill()
		} else if err := n.Stop(os.Interrupt, grace); err != nil {
			t.Errorf("%v", err)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", n.Name, n.Logs.String())
		}
	})
	return n
}

// Status decodes the node's /api/status into v.
func (n *Node) Status(v any) error { return GetJSON(n.API+"/api/status", v) }

// Until asks cond every poll interval until it holds; it gives up when the
// node exits or ctx ends.
func (n *Node) Until(ctx context.Context, what string, cond func() bool) error {
	return n.Poll(ctx, n.poll, what, cond)
}

// Await waits until ok accepts the node's /api/status, and returns that
// status.
func (n *Node) Await(ctx context.Context, what string, ok func(map[string]any) bool) (map[string]any, error) {
	var st map[string]any
	err := n.Until(ctx, what, func() bool {
		st = nil
		return n.Status(&st) == nil && ok(st)
	})
	return st, err
}

// WaitStatus is Await for a test, within the node's Wait: it fails the
// test, with the node's output, when the node exits or time runs out.
func (n *Node) WaitStatus(t TB, what string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), n.wait)
	defer cancel()
	st, err := n.Await(ctx, what, ok)
	if err != nil {
		t.Fatalf("%v\n%s", err, n.Logs.String())
	}
	return st
}
