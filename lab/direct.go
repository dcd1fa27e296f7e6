package lab

import (
	"fmt"
	"io"
	"net"
	"os/exec"
	"time"

	"github.com/potluck-gpu/potluck/internal/nodetest"
)

// Baselines for benchmarks: what the same machines do without Potluck in
// between, a plain TCP connection or llama.cpp's own RPC across the lab's
// LAN.

// Child is a process a node started (llama-server, rpc-server): its
// command line and environment, to start the same elsewhere.
type Child = nodetest.Child

// Child finds the node's running child process that runs one of the
// programs names (e.g. "llama-server"), whether directly or through the
// runtime's dynamic loader.
func (n *Node) Child(names ...string) (Child, error) {
	parent := n.PID()
	if parent == 0 {
		return Child{}, fmt.Errorf("%s is not running", n.Name)
	}
	return nodetest.FindChild(parent, names...)
}

// Spawn runs args in the node's namespace with env until the test ends or
// the returned stop is called. Its output goes to the returned log.
func (n *Node) Spawn(args, env []string) (stop func(), log func(lines int) string, err error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.NS}, args...)...)
	cmd.Env = env
	p, err := nodetest.Exec("", cmd, &nodetest.Logs{Max: 500})
	if err != nil {
		return nil, nil, err
	}
	n.lab.t.Cleanup(p.Kill)
	return p.Kill, p.Logs.Last, nil
}

// RawTCP sends size bytes over one plain TCP connection from n to to, and
// returns the throughput the receiver saw, in bits per second, from its
// first byte to its last.
func (n *Node) RawTCP(to *Node, size int64) (float64, error) {
	var ln net.Listener
	if err := inNS(to.NS, func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(to.IP, "0"))
		return err
	}); err != nil {
		return 0, err
	}
	defer ln.Close()
	type result struct {
		bps float64
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Minute))
		first := make([]byte, 1)
		if _, err := io.ReadFull(c, first); err != nil {
			got <- result{err: err}
			return
		}
		start := time.Now()
		rest, err := io.Copy(io.Discard, c)
		took := time.Since(start)
		if err == nil && rest+1 != size {
			err = fmt.Errorf("received %d of %d bytes", rest+1, size)
		}
		got <- result{bps: float64(rest) * 8 / took.Seconds(), err: err}
	}()
	var c net.Conn
	if err := inNS(n.NS, func() error {
		var err error
		c, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		return err
	}); err != nil {
		return 0, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		k, err := c.Write(buf[:min(int64(len(buf)), left)])
		left -= int64(k)
		if err != nil {
			c.Close()
			return 0, err
		}
	}
	c.Close()
	r := <-got
	return r.bps, r.err
}
