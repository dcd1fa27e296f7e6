package lab

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/netmesh"
)

// Node is one machine of the lab.
type Node struct {
	Index   int
	Name    string // node<i>: the lab's name for it, and its --name unless Args give another
	NS      string // its network namespace
	IP      string // its LAN address
	DataDir string
	// Client reaches the node's API on the loopback of its namespace, as
	// an app on that machine would: it opens its connections from inside
	// the namespace. The host has no route into the lab (and is not given
	// one), so the API keeps its default loopback address and needs no key.
	Client *http.Client

	// In an internet lab (NewInternet): the NAT kind of its home ("" on
	// the public segment), its router's namespace and public address.
	NAT    string
	Router string
	WANIP  string

	lab   *Lab
	relay *relay
	logs  *nodetest.Logs // output of every run

	mu      sync.Mutex
	proc    *nodetest.Proc // the current run of `potluck run`
	extra   []string       // the flags Start added
	started time.Time
}

func (n *Node) port() string { return "p" + strconv.Itoa(n.Index) }

// args is the command line of the node, after `ip netns exec NS`.
func (n *Node) args() []string {
	args := []string{n.lab.bin, "run",
		"--data-dir", n.DataDir, "--api", APIAddr, "--name", n.Name,
		"--threads", "1", "--ctx-size", "512", "--log-level", "debug",
		"--token", n.lab.token,
	}
	if n.lab.internet {
		// As a user's node: the default port, the members' DHT on.
		args = append(args, "--p2p-listen", fmt.Sprintf("/ip4/%s/tcp/%d", n.IP, netmesh.DefaultPort))
	} else {
		args = append(args, "--no-dht", "--p2p-listen", fmt.Sprintf("/ip4/%s/tcp/%d", n.IP, P2PPort))
	}
	if n.lab.opts.Args != nil {
		args = append(args, n.lab.opts.Args(n.Index)...)
	}
	return args
}

// Start starts a node New held back, with extra flags after its Args, and
// waits until its API answers.
func (n *Node) Start(extra ...string) {
	n.lab.t.Helper()
	if n.current() != nil {
		n.lab.t.Fatalf("start %s: it was started before; use Restart", n.Name)
	}
	n.start(extra)
	n.waitAPI()
}

func (n *Node) waitAPI() {
	n.lab.t.Helper()
	n.lab.Wait(n.Name+"'s API", n.lab.opts.Ready, func() bool {
		_, err := n.Status()
		return err == nil
	})
}

func (n *Node) start(extra []string) {
	t := n.lab.t
	t.Helper()
	args := append(n.args(), extra...)
	n.mu.Lock()
	n.extra = extra
	n.mu.Unlock()
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.NS}, args...)...)
	cmd.Env = append(os.Environ(), "POTLUCK_P2P_HEARTBEAT="+Heartbeat.String())
	cmd.Env = append(cmd.Env, n.lab.opts.Env...)
	// `ip netns exec` execs potluck in place: the pid is the node's, and it
	// dies with the test process.
	p, err := nodetest.Exec(n.Name, cmd, n.logs)
	if err != nil {
		t.Fatalf("%v", err)
	}
	n.mu.Lock()
	n.proc, n.started = p, time.Now()
	n.mu.Unlock()
}

// Started is when the node's current run began.
func (n *Node) Started() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.started
}

func (n *Node) current() *nodetest.Proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// PID is the node's potluck process id, or 0 when it is not running.
func (n *Node) PID() int {
	p := n.current()
	if p == nil || !p.Running() {
		return 0
	}
	return p.PID()
}

// Running says whether the node's potluck process is alive (paused counts).
func (n *Node) Running() bool { return n.PID() != 0 }

// stop ends the node gracefully, as at the end of a test.
func (n *Node) stop() {
	p := n.current()
	if p == nil || !p.Running() {
		return
	}
	signalNS(n.NS, syscall.SIGCONT)
	if err := p.Stop(syscall.SIGTERM, 15*time.Second); err != nil {
		n.lab.t.Errorf("%v", err)
	}
}

// Kill powers the machine off: SIGKILL to potluck and everything else in the
// namespace (its llama.cpp children).
func (n *Node) Kill() {
	p := n.current()
	if p == nil {
		return
	}
	_ = p.Cmd.Process.Kill()
	signalNS(n.NS, syscall.SIGKILL)
	select {
	case <-p.Exited():
	case <-time.After(10 * time.Second):
		n.lab.t.Fatalf("%s still running 10s after SIGKILL", n.Name)
	}
	signalNS(n.NS, syscall.SIGKILL)
}

// Restart starts a killed node again, with the same flags and data dir
// (so the same peer id), and waits until its API answers.
func (n *Node) Restart() {
	n.lab.t.Helper()
	if n.Running() {
		n.lab.t.Fatalf("restart %s: it is still running", n.Name)
	}
	n.mu.Lock()
	extra := n.extra
	n.mu.Unlock()
	n.start(extra)
	n.waitAPI()
}

// Rerun stops the node if it runs (SIGKILL, as Kill) and starts it again
// with other extra flags, and the same data dir; it waits until the API
// answers.
func (n *Node) Rerun(extra ...string) {
	n.lab.t.Helper()
	n.Kill()
	n.start(extra)
	n.waitAPI()
}

// Pause stops every process of the machine (SIGSTOP), like a laptop put to
// sleep; its link stays up.
func (n *Node) Pause() { signalNS(n.NS, syscall.SIGSTOP) }

// Resume wakes a paused machine (SIGCONT).
func (n *Node) Resume() { signalNS(n.NS, syscall.SIGCONT) }

// Cut unplugs the machine's cable at the switch: its bridge port goes down.
func (n *Node) Cut() {
	if err := ipCmd("-n", n.lab.bridge, "link", "set", n.port(), "down"); err != nil {
		n.lab.t.Fatal(err)
	}
}

// Heal plugs the cable back in.
func (n *Node) Heal() {
	if err := ipCmd("-n", n.lab.bridge, "link", "set", n.port(), "up"); err != nil {
		n.lab.t.Fatal(err)
	}
}

// Netem delays and drops the frames of the machine's link, in both
// directions; the zero Impairment clears it. It uses tc netem where the
// kernel has it, and the TAP relay of a Shaped node otherwise.
func (n *Node) Netem(imp Impairment) {
	t := n.lab.t
	t.Helper()
	if n.relay != nil {
		n.relay.set(imp)
		return
	}
	if !n.lab.netem {
		t.Fatalf("%s: this kernel has no tc netem; list the node in Options.Shaped to shape its link with a relay", n.Name)
	}
	for _, end := range []struct{ ns, dev string }{{n.NS, "lan0"}, {n.lab.bridge, n.port()}} {
		var err error
		if imp == (Impairment{}) {
			err = tcCmd(end.ns, "qdisc", "del", "dev", end.dev, "root")
		} else {
			err = tcCmd(end.ns, "qdisc", "replace", "dev", end.dev, "root", "netem",
				"delay", fmt.Sprintf("%dus", imp.Delay.Microseconds()),
				"loss", strconv.FormatFloat(imp.Loss*100, 'f', -1, 64)+"%")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// RateLimit caps what the machine sends on its link at mbit megabits a
// second, as a slower uplink would (tc tbf); 0 lifts the cap.
func (n *Node) RateLimit(mbit int) {
	t := n.lab.t
	t.Helper()
	var err error
	if mbit == 0 {
		err = tcCmd(n.NS, "qdisc", "del", "dev", "lan0", "root")
	} else {
		err = tcCmd(n.NS, "qdisc", "replace", "dev", "lan0", "root", "tbf",
			"rate", strconv.Itoa(mbit)+"mbit", "burst", "256kb", "latency", "100ms")
	}
	if err != nil {
		t.Fatal(err)
	}
}

// Logs returns the last lines of the node's output (all of its runs).
func (n *Node) Logs(lines int) string { return n.logs.Last(lines) }

// URL is the address of path on the node's API, for n.Client.
func (n *Node) URL(path string) string { return "http://" + APIAddr + path }

// Quiet returns the last lines of the node's output without the API's
// request lines, which the tests' own polling fills the log with.
func (n *Node) Quiet(lines int) string { return n.logs.Quiet(lines) }
