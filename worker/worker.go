// Package worker runs what this machine lends to the pool's splits: the
// llama.cpp RPC worker, confined, behind the RPC gate that members' heads
// reach through the mesh. The gate holds back members this machine does
// not lend to, and counts what it refuses against the member who sent it.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/rpcgate"
)

// Spec is what a worker runs.
type Spec struct {
	Runtime  engine.Runtime
	Versions engine.Versions // of Runtime
	// Matches names the head whose llama.cpp Runtime is, when it is not
	// the node's own.
	Matches  string
	Devices  []string // llama.cpp's names of the devices lent
	Threads  int
	CacheDir string // the RPC tensor cache
	// Budget is what heads may allocate on the worker now (see Budget);
	// 0: no bound, the hardware not known yet. The gate asks it for each
	// stream, the sandbox once, at the start.
	Budget  func() uint64
	LogFile string
	Log     *slog.Logger
	// Stopped is told when the worker stops for good, not by Stop.
	Stopped func(error)
}

// Members is what the gate asks of the node about the members whose
// streams reach it.
type Members interface {
	// PeerOfConn names the member behind a connection the mesh made to a
	// local service; the mesh notes it right after it connects.
	PeerOfConn(remoteAddr string) (peerID string, ok bool)
	// LendsTo says whether this machine lends to the member.
	LendsTo(peerID string) bool
	// Refused is told of a stream the gate closed.
	Refused(peerID string, r *rpcgate.Refusal)
}

// Worker is a running RPC worker and its gate.
type Worker struct {
	spec    Spec
	addr    string       // the worker, on loopback
	gate    net.Listener // the gate in front of it, which the mesh reaches
	sup     *engine.Supervisor
	members Members
	cancel  context.CancelFunc
	done    chan struct{}
}

// Memory is the most a worker with this gate budget may commit, where the
// sandbox bounds it: the budget and a GiB for llama.cpp itself; 0 (no
// bound) with no budget.
func Memory(budget uint64) uint64 {
	if budget > 0 {
		return budget + 1<<30
	}
	return 0
}

// Budget is what heads may allocate on a worker that lends offer bytes:
// the offer, and a quarter more for the compute buffers a plan does not
// count; 0 (no bound) with no offer known.
func Budget(offer uint64) uint64 { return offer + offer/4 }

// Start starts the worker and its gate; they run until Stop or ctx ends.
func Start(ctx context.Context, spec Spec, members Members) (*Worker, error) {
	if spec.Log == nil {
		spec.Log = slog.New(slog.DiscardHandler)
	}
	if spec.Budget == nil {
		spec.Budget = func() uint64 { return 0 }
	}
	if len(spec.Devices) == 0 {
		return nil, errors.New("this computer lends no memory: raise --share-memory, or name devices that have some with --device")
	}
	port, err := engine.FreePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(spec.CacheDir, 0o700); err != nil {
		return nil, err
	}
	ss := spec.Runtime.WorkerSupervisorSpec(engine.WorkerSpec{Port: port, Threads: spec.Threads, CacheDir: spec.CacheDir,
		Devices: spec.Devices, Memory: Memory(spec.Budget())})
	ss.Log = spec.Log
	ss.LogFile = spec.LogFile
	w := &Worker{spec: spec, addr: "127.0.0.1:" + strconv.Itoa(port), sup: engine.NewSupervisor(ss), members: members, done: make(chan struct{})}
	ctx, w.cancel = context.WithCancel(ctx)
	go func() {
		defer close(w.done)
		if err := w.sup.Run(ctx); err != nil && spec.Stopped != nil {
			spec.Stopped(err)
		}
	}()
	upCtx, upCancel := context.WithTimeout(ctx, 30*time.Second)
	defer upCancel()
	if err := w.sup.Up(upCtx); err != nil {
		w.cancel()
		<-w.done
		return nil, fmt.Errorf("start the shard worker: %w", err)
	}
	if w.gate, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		w.cancel()
		<-w.done
		return nil, fmt.Errorf("start the RPC gate: %w", err)
	}
	go w.serveGate()
	return w, nil
}

// Stop stops the gate and the worker, and waits for the worker to end.
func (w *Worker) Stop() {
	w.gate.Close()
	w.cancel()
	<-w.done
}

// Addr is the worker's own address; GateAddr the gate's, which the mesh
// exposes.
func (w *Worker) Addr() string     { return w.addr }
func (w *Worker) GateAddr() string { return w.gate.Addr().String() }

// Devices are the devices it lends; Versions and Matches as in its Spec.
func (w *Worker) Devices() []string         { return w.spec.Devices }
func (w *Worker) Versions() engine.Versions { return w.spec.Versions }
func (w *Worker) Matches() string           { return w.spec.Matches }

// Status is the worker process's state.
func (w *Worker) Status() engine.Status { return w.sup.Status() }

// serveGate carries each stream the mesh brings to the worker through the
// gate, until the gate closes.
func (w *Worker) serveGate() {
	for {
		head, err := w.gate.Accept()
		if err != nil {
			return
		}
		go w.gateConn(head)
	}
}

func (w *Worker) gateConn(head net.Conn) {
	peer := w.streamPeer(head.RemoteAddr().String())
	if !w.members.LendsTo(peer) {
		// Not a misbehaving member: one this machine does not lend to,
		// whose head planned before it learnt so.
		head.Close()
		w.spec.Log.Info("held a stream to the shard worker from a member this computer does not lend to", "peer_id", peer)
		return
	}
	worker, err := net.DialTimeout("tcp", w.addr, 5*time.Second)
	if err != nil {
		head.Close()
		return
	}
	if ref := rpcgate.Pipe(head, worker, rpcgate.Limits{MaxAlloc: w.spec.Budget()}); ref != nil {
		w.members.Refused(peer, ref)
	}
}

// streamPeer is the member behind a connection to the gate: the mesh notes
// it right after it connects, so it is asked for a little while.
func (w *Worker) streamPeer(remote string) string {
	for range 50 {
		if id, ok := w.members.PeerOfConn(remote); ok {
			return id
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ""
}
