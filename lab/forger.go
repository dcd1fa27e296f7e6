package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/netmesh/netmeshtest"
)

// A forger is a machine of the lab that holds the network's token but is
// not what it claims: it publishes heartbeats under another member's peer
// id (see netmeshtest.Forger). It runs as the test binary itself, started
// again in the machine's namespace with helperEnv set; the test's TestMain
// calls RunHelper so that this run does the forging instead of the tests.

const (
	helperEnv     = "POTLUCK_LABTEST_HELPER"
	forgerToken   = "POTLUCK_LABTEST_FORGER_TOKEN"
	forgerVictim  = "POTLUCK_LABTEST_FORGER_VICTIM"
	forgerBoot    = "POTLUCK_LABTEST_FORGER_BOOTSTRAP"
	forgerRunFor  = "POTLUCK_LABTEST_FORGER_FOR"
	forgerAddress = "POTLUCK_LABTEST_FORGER_LISTEN"
)

// RunHelper runs a helper process when the test binary was started as one
// (see StartForger), and exits; otherwise it returns at once. Call it first
// in TestMain.
func RunHelper() {
	switch os.Getenv(helperEnv) {
	case "forger":
		os.Exit(forgerMain())
	case "hostile":
		os.Exit(hostileMain())
	}
}

// ForgerReport is what a forger says it did.
type ForgerReport struct {
	Rounds   int            `json:"rounds"`
	Sent     map[string]int `json:"sent"` // by kind of forgery
	Captured int            `json:"captured"`
	Error    string         `json:"error,omitempty"`
}

func forgerMain() int {
	rep := ForgerReport{Sent: map[string]int{}}
	defer func() { _ = json.NewEncoder(os.Stdout).Encode(rep) }()
	runFor, err := time.ParseDuration(os.Getenv(forgerRunFor))
	if err != nil {
		rep.Error = err.Error()
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), runFor+30*time.Second)
	defer cancel()
	var f *netmeshtest.Forger
	n, stop, err := helperNode(ctx, "forger", os.Getenv(forgerToken), os.Getenv(forgerAddress), os.Getenv(forgerBoot), func(cfg *netmesh.Config) (err error) {
		f, err = netmeshtest.NewForger(cfg)
		return err
	})
	if err != nil {
		rep.Error = err.Error()
		return 1
	}
	defer stop()
	f.Attach(n)
	victim := os.Getenv(forgerVictim)
	// Listen first, so that there is something of the victim to replay.
	for deadline := time.Now().Add(15 * time.Second); f.Captured(victim) < 2 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	rep.Captured = f.Captured(victim)
	for end := time.Now().Add(runFor); time.Now().Before(end); rep.Rounds++ {
		for _, a := range f.ForgeAs(victim, "forged", uint64(rep.Rounds)) {
			if a.Sent {
				rep.Sent[a.Kind]++
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return 0
}

// helperNode joins the lab's network as a bare mesh node named name, for
// a helper, after prepare (if any) has seen its configuration. It runs
// until ctx ends or stop is called.
func helperNode(ctx context.Context, name, token, listen, boot string, prepare func(*netmesh.Config) error) (*netmesh.Node, func(), error) {
	dir, err := os.MkdirTemp("", "potluck-"+name+"-")
	if err != nil {
		return nil, nil, err
	}
	cfg := netmesh.Config{
		Token: token, DataDir: dir, Name: name,
		ListenAddrs: []string{listen}, Bootstrap: []string{boot},
		DisableDHT: true, HeartbeatInterval: Heartbeat,
	}
	if prepare != nil {
		if err := prepare(&cfg); err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
	}
	n, err := netmesh.New(cfg, nil)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = n.Run(ctx)
	}()
	stop := func() {
		n.Close()
		<-done
		os.RemoveAll(dir)
	}
	if err := n.Up(ctx); err != nil {
		stop()
		return nil, nil, err
	}
	return n, stop, nil
}

// Forger is a running forger process.
type Forger struct{ *helper }

// StartForger runs a forger on machine n (which runs no potluck) for d: it
// joins with the lab's token through bootstrap and speaks as victim.
func (n *Node) StartForger(victim, bootstrap string, d time.Duration) *Forger {
	n.lab.t.Helper()
	return &Forger{n.startHelper("forger", forgerToken+"="+n.lab.token,
		forgerVictim+"="+victim, forgerBoot+"="+bootstrap, forgerRunFor+"="+d.String(),
		forgerAddress+"="+fmt.Sprintf("/ip4/%s/tcp/%d", n.IP, P2PPort))}
}

// Wait waits for the forger to finish and returns its report.
func (f *Forger) Wait(within time.Duration) (ForgerReport, error) {
	var rep ForgerReport
	if err := f.wait(within, &rep); err != nil {
		return rep, err
	}
	if rep.Error != "" {
		return rep, fmt.Errorf("forger: %s", rep.Error)
	}
	return rep, nil
}

// helper is a process of the test binary run as a helper (RunHelper) in a
// machine's namespace, which prints its report as JSON.
type helper struct {
	kind string
	proc *nodetest.Proc
	out  *bytes.Buffer
}

// startHelper runs the test binary as a helper of kind on machine n,
// with env added.
func (n *Node) startHelper(kind string, env ...string) *helper {
	t := n.lab.t
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", n.NS, exe, "-test.run=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+kind), env...)
	h := &helper{kind: kind, out: &bytes.Buffer{}}
	cmd.Stdout = h.out
	cmd.Stderr = n.logs
	if h.proc, err = nodetest.Exec("the "+kind, cmd, nil); err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(h.proc.Kill)
	return h
}

// wait waits for the helper to finish and decodes its report into v.
func (h *helper) wait(within time.Duration, v any) error {
	select {
	case <-h.proc.Exited():
	case <-time.After(within):
		h.proc.Kill()
		return fmt.Errorf("the %s did not finish within %s", h.kind, within)
	}
	if err := json.Unmarshal(h.out.Bytes(), v); err != nil {
		return fmt.Errorf("%s report %q: %w (exit %s)", h.kind, h.out.String(), err, strconv.Itoa(h.proc.Cmd.ProcessState.ExitCode()))
	}
	return nil
}
