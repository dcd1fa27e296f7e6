package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/rpcgate/rpcgatetest"
)

// A hostile member is a machine of the lab that holds the network's token
// and sends a sharing worker's RPC service, stream by stream, what no
// inference sends (rpcgatetest.Attacks). It runs as the test binary, as
// the forger does.

const (
	hostileToken  = "POTLUCK_LABTEST_HOSTILE_TOKEN"
	hostileWorker = "POTLUCK_LABTEST_HOSTILE_WORKER"
	hostileBoot   = "POTLUCK_LABTEST_HOSTILE_BOOTSTRAP"
	hostileListen = "POTLUCK_LABTEST_HOSTILE_LISTEN"
)

// HostileReport is what a hostile member says happened to each attack:
// "closed" (the stream ended at once) or what went otherwise.
type HostileReport struct {
	PeerID   string            `json:"peer_id"`
	Outcomes map[string]string `json:"outcomes"`
	Error    string            `json:"error,omitempty"`
}

func hostileMain() int {
	rep := HostileReport{Outcomes: map[string]string{}}
	defer func() { _ = json.NewEncoder(os.Stdout).Encode(rep) }()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n, stop, err := helperNode(ctx, "mallory", os.Getenv(hostileToken), os.Getenv(hostileListen), os.Getenv(hostileBoot), nil)
	if err != nil {
		rep.Error = err.Error()
		return 1
	}
	defer stop()
	rep.PeerID = n.ID()
	worker := os.Getenv(hostileWorker)
	for _, a := range rpcgatetest.Attacks() {
		c, major, err := helloWorker(ctx, n, worker)
		if err != nil {
			rep.Outcomes[a.Name] = err.Error()
			continue
		}
		if _, err := c.Write(a.Frame(major)); err != nil {
			rep.Outcomes[a.Name] = "closed" // before it was all written
		} else if rpcgatetest.Closed(c, 10*time.Second) {
			rep.Outcomes[a.Name] = "closed"
		} else {
			rep.Outcomes[a.Name] = "open: the stream went on"
		}
		c.Close()
	}
	return 0
}

// helloWorker opens a stream to worker's RPC service and says HELLO,
// dialling again while the worker is still starting, for up to a minute.
func helloWorker(ctx context.Context, n *netmesh.Node, worker string) (net.Conn, byte, error) {
	var last error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		tun, err := n.Dial(ctx, worker, "llama-rpc")
		if err != nil {
			last = err
			continue
		}
		c, err := net.Dial("tcp", tun.Addr())
		if err != nil {
			tun.Close()
			last = err
			continue
		}
		major, err := rpcgatetest.Hello(c, 20*time.Second)
		if err == nil {
			return &tunnelConn{c, tun}, major, nil
		}
		c.Close()
		tun.Close()
		last = err
	}
	return nil, 0, fmt.Errorf("no HELLO through the gate: %v", last)
}

// tunnelConn closes its tunnel with it.
type tunnelConn struct {
	net.Conn
	tun *netmesh.Tunnel
}

func (c *tunnelConn) Close() error {
	c.tun.Close()
	return c.Conn.Close()
}

// Hostile is a running hostile member.
type Hostile struct{ *helper }

// StartHostile runs a hostile member on machine n (which runs no potluck):
// it joins with the lab's token through bootstrap and attacks the RPC
// service of the worker with peer id worker.
func (n *Node) StartHostile(worker, bootstrap string) *Hostile {
	n.lab.t.Helper()
	return &Hostile{n.startHelper("hostile", hostileToken+"="+n.lab.token, hostileWorker+"="+worker,
		hostileBoot+"="+bootstrap, hostileListen+"="+fmt.Sprintf("/ip4/%s/tcp/%d", n.IP, P2PPort))}
}

// Wait waits for the hostile member to finish and returns its report.
func (h *Hostile) Wait(within time.Duration) (HostileReport, error) {
	var rep HostileReport
	if err := h.wait(within, &rep); err != nil {
		return rep, err
	}
	if rep.Error != "" {
		return rep, fmt.Errorf("hostile member: %s", rep.Error)
	}
	return rep, nil
}
