package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/internal/nodetest"
)

// child is a process the benchmark started. It dies with the benchmark
// (nodetest.Exec) and, leading a process group of its own, stops with what
// it started.
type child struct{ *nodetest.Proc }

func startChild(name string, cmd *exec.Cmd) (*child, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := nodetest.Exec(name, cmd, &nodetest.Logs{Max: 40})
	if err != nil {
		return nil, err
	}
	return &child{p}, nil
}

func (c *child) pid() int { return c.PID() }

// stop asks the child to stop (sig to its group) and kills the group if it
// has not exited within grace.
func (c *child) stop(sig syscall.Signal, grace time.Duration) {
	if c == nil || !c.Running() {
		return
	}
	_ = syscall.Kill(-c.pid(), sig)
	select {
	case <-c.Exited():
	case <-time.After(grace):
		_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
		<-c.Exited()
	}
}

// failure wraps err with the last lines the child printed.
func (c *child) failure(err error) error {
	return fmt.Errorf("%s: %w\n%s", c.Name, err, indent(strings.TrimRight(c.Logs.Last(8), "\n")))
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

// waitFor polls cond every step until it returns true, the child exits, or
// timeout passes.
func (c *child) waitFor(timeout, step time.Duration, what string, cond func() bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.Poll(ctx, step, what, cond); err != nil {
		return c.failure(err)
	}
	return nil
}

// potluck is a `potluck run` process.
type potluck struct {
	*child
	api string // http://127.0.0.1:port
}

// meshArgs puts a node in the mesh of token on loopback, no DHT, no mDNS.
func meshArgs(token string, extra ...string) []string {
	return append([]string{"--token", token, "--no-dht", "--no-mdns", "--p2p-listen", "/ip4/127.0.0.1/tcp/0"}, extra...)
}

// startPotluck runs `potluck run` with its own data dir, a free API port
// and quiet logs, and returns once the API answers.
func (b *bench) startPotluck(name string, env []string, args ...string) (*potluck, error) {
	dir, err := os.MkdirTemp(b.tmp, "node-"+name+"-")
	if err != nil {
		return nil, err
	}
	n, err := nodetest.Launch(nodetest.Config{
		Bin: b.potluckBin, Name: "potluck " + name, DataDir: dir, LogLevel: "warn",
		Args: append([]string{"--name", name}, args...), Env: append(os.Environ(), env...),
		Logs: &nodetest.Logs{Max: 40}, Poll: 20 * time.Millisecond,
	})
	if err != nil {
		return nil, err
	}
	p := &potluck{child: &child{n.Proc}, api: n.API}
	b.cleanup(func() { p.stop(syscall.SIGINT, 15*time.Second) })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := n.Await(ctx, "API", func(map[string]any) bool { return true }); err != nil {
		p.stop(syscall.SIGKILL, time.Second)
		return nil, p.failure(err)
	}
	return p, nil
}

// stop asks the node to stop and kills it if it has not exited within
// grace. Its llama.cpp children lead process groups of their own, which
// the node stops.
func (p *potluck) stop(sig syscall.Signal, grace time.Duration) { _ = p.Stop(sig, grace) }

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

// getJSON decodes GET url into v, with the benchmark's client.
func getJSON(url string, v any) error { return nodetest.Get(context.Background(), apiClient, url, v) }

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
