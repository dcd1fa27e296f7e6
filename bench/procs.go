package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/potluck-gpu/potluck/engine"
)

// tail keeps the last lines a child printed, for error messages.
type tail struct {
	mu    sync.Mutex
	lines []string
	part  string
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.part + string(p)
	parts := strings.Split(s, "\n")
	t.part = parts[len(parts)-1]
	t.lines = append(t.lines, parts[:len(parts)-1]...)
	if len(t.lines) > 40 {
		t.lines = t.lines[len(t.lines)-40:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(append(t.lines, t.part), "\n")
}

// child is a process the benchmark started. It dies with the benchmark
// (parent-death signal) and stops with SIGTERM to its process group.
type child struct {
	name string
	cmd  *exec.Cmd
	out  *tail
	done chan struct{}
	err  error
}

func startChild(name string, cmd *exec.Cmd) (*child, error) {
	c := &child{name: name, cmd: cmd, out: &tail{}, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = c.out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = c.out
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop asks the child to stop (sig to its group) and kills the group if it
// has not exited within grace.
func (c *child) stop(sig syscall.Signal, grace time.Duration) {
	if c == nil || c.exited() {
		return
	}
	_ = syscall.Kill(-c.pid(), sig)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
		<-c.done
	}
}

// failure wraps err with the last lines the child printed.
func (c *child) failure(err error) error {
	return fmt.Errorf("%s: %w\n%s", c.name, err, indent(lastLines(c.out.String(), 8)))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

// waitFor polls cond every step until it returns true, the child exits, or
// timeout passes.
func (c *child) waitFor(timeout, step time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if c != nil && c.exited() {
			return c.failure(fmt.Errorf("exited while waiting for %s (%v)", what, c.err))
		}
		if time.Now().After(deadline) {
			err := fmt.Errorf("no %s after %v", what, timeout)
			if c != nil {
				return c.failure(err)
			}
			return err
		}
		time.Sleep(step)
	}
	return nil
}

// potluck is a `potluck run` process.
type potluck struct {
	*child
	api string // http://127.0.0.1:port
}

// Flags of every node: loopback only, one llama.cpp thread, quiet logs.
func baseRunArgs(api, dataDir string) []string {
	return []string{"run", "--api", api, "--data-dir", dataDir, "--threads", "1", "--ctx-size", "512", "--log-level", "warn"}
}

// meshArgs puts a node in the mesh of token on loopback, no DHT, no mDNS.
func meshArgs(token string, extra ...string) []string {
	return append([]string{"--token", token, "--no-dht", "--no-mdns", "--p2p-listen", "/ip4/127.0.0.1/tcp/0"}, extra...)
}

// startPotluck runs `potluck run` with its own data dir and a free API port,
// and returns once the API answers.
func (b *bench) startPotluck(name string, env []string, args ...string) (*potluck, error) {
	port, err := engine.FreePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(b.tmp, "node-"+name+"-")
	if err != nil {
		return nil, err
	}
	api := "127.0.0.1:" + strconv.Itoa(port)
	all := append(baseRunArgs(api, dir), append([]string{"--name", name}, args...)...)
	cmd := exec.Command(b.potluckBin, all...)
	cmd.Env = append(os.Environ(), env...)
	c, err := startChild("potluck "+name, cmd)
	if err != nil {
		return nil, err
	}
	p := &potluck{child: c, api: "http://" + api}
	b.cleanup(func() { p.stop(syscall.SIGINT, 15*time.Second) })
	err = c.waitFor(60*time.Second, 20*time.Millisecond, "API", func() bool {
		var st map[string]any
		return getJSON(p.api+"/api/status", &st) == nil
	})
	if err != nil {
		p.stop(syscall.SIGKILL, time.Second)
		return nil, err
	}
	return p, nil
}

type nodeStatus struct {
	PeerID      string   `json:"peer_id"`
	P2PAddrs    []string `json:"p2p_addrs"`
	InMesh      bool     `json:"in_mesh"`
	PeersOnline int      `json:"peers_online"`
	Model       *struct {
		ID    string `json:"id"`
		Ready bool   `json:"ready"`
		State struct {
			PID int `json:"pid"`
		} `json:"state"`
	} `json:"model"`
}

func (p *potluck) status() (nodeStatus, error) {
	var st nodeStatus
	err := getJSON(p.api+"/api/status", &st)
	return st, err
}

// meshStatus waits until the node is in the mesh and returns its status.
func (p *potluck) meshStatus() (nodeStatus, error) {
	var st nodeStatus
	err := p.waitFor(30*time.Second, 20*time.Millisecond, "mesh membership", func() bool {
		s, err := p.status()
		st = s
		return err == nil && s.InMesh && len(s.P2PAddrs) > 0
	})
	return st, err
}

type peerDoc struct {
	PeerID string `json:"peer_id"`
	Name   string `json:"name"`
	Online bool   `json:"online"`
	// RTTMS is the last measured round trip to the peer.
	RTTMS float64 `json:"rtt_ms"`
}

func (p *potluck) peers() ([]peerDoc, error) {
	var ps []peerDoc
	err := getJSON(p.api+"/api/peers", &ps)
	return ps, err
}

// llamaServerPort finds the port of the node's own llama-server from its
// command line.
func (p *potluck) llamaServer() (pid int, args []string, err error) {
	st, err := p.status()
	if err != nil {
		return 0, nil, err
	}
	if st.Model == nil || st.Model.State.PID == 0 {
		return 0, nil, errors.New("node runs no llama-server")
	}
	argv, err := cmdline(st.Model.State.PID)
	if err != nil {
		return 0, nil, err
	}
	for i, a := range argv {
		if strings.HasSuffix(a, "/llama-server") || a == "llama-server" {
			return st.Model.State.PID, argv[i+1:], nil
		}
	}
	return 0, nil, fmt.Errorf("unexpected llama-server command line %q", argv)
}

// argValue returns the value of flag in args.
func argValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// withArg returns args with the value of flag replaced.
func withArg(args []string, flag, value string) []string {
	out := append([]string(nil), args...)
	for i, a := range out {
		if a == flag && i+1 < len(out) {
			out[i+1] = value
			return out
		}
	}
	return append(out, flag, value)
}

var apiClient = &http.Client{Timeout: 30 * time.Second}

func getJSON(url string, v any) error {
	resp, err := apiClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// llama starts a llama.cpp child from a supervisor spec's command (the same
// argv and environment the product uses) and waits until ready answers,
// polling every 5 ms. It returns the child and how long it took to be ready.
func (b *bench) llama(name string, spec engine.Spec, timeout time.Duration) (*child, time.Duration, error) {
	cmd, err := spec.Command(context.Background())
	if err != nil {
		return nil, 0, err
	}
	start := time.Now()
	c, err := startChild(name, cmd)
	if err != nil {
		return nil, 0, err
	}
	b.cleanup(func() { c.stop(syscall.SIGTERM, 10*time.Second) })
	err = c.waitFor(timeout, 5*time.Millisecond, "readiness", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return spec.Ready(ctx) == nil
	})
	if err != nil {
		c.stop(syscall.SIGKILL, time.Second)
		return nil, 0, err
	}
	return c, time.Since(start), nil
}

// serverSpec runs llama-server with exactly args (taken from a node).
func serverSpecArgs(rt engine.Runtime, port int, args []string) engine.Spec {
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	return engine.Spec{
		Name: "llama-server",
		Command: func(ctx context.Context) (*exec.Cmd, error) {
			return rt.Server.Command(ctx, args...), nil
		},
		Ready: func(ctx context.Context) error { return engine.HealthCheck(ctx, base) },
	}
}

// dialable reports whether something listens on addr.
func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
