package netmesh

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
)

const (
	// reachTimeout bounds the wait for a peer when the caller's context
	// has no deadline of its own.
	reachTimeout = 30 * time.Second
	// reachRetry is how often a peer not reached yet is dialed again.
	reachRetry = time.Second
)

// errNoDeadline is the cause of a wait cut short by reachTimeout.
var errNoDeadline = fmt.Errorf("the caller set no deadline, and a peer is awaited at most %v", reachTimeout)

// reach connects to pid, waiting for it while ctx allows: a peer asked for
// right after the node came up is often being connected to (bootstrap,
// heartbeats, the LAN) but not yet reached. It dials now, again whenever
// new addresses of the peer are learnt and every reachRetry, and returns as
// soon as a connection to the peer exists, whoever opened it. A ctx with no
// deadline waits at most reachTimeout. A dial that reaches the peer's
// addresses and is turned down ends the wait at once: that peer is gone,
// not on its way.
func (n *Node) reach(ctx context.Context, h host.Host, pid peer.ID) error {
	if reached(h, pid) {
		return nil
	}
	if !n.admitted(pid) {
		return fmt.Errorf("peer %s is blocked or not admitted to this mesh: it is never dialed", pid)
	}
	n.mu.Lock()
	stopped := n.runCtx
	n.mu.Unlock()
	if stopped == nil {
		return errors.New("netmesh: node is not up")
	}
	start := time.Now()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, reachTimeout, errNoDeadline)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	sub, err := h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return fmt.Errorf("watch for peer %s: %w", pid, err)
	}
	defer sub.Close()
	known := map[string]bool{}
	for _, a := range h.Peerstore().Addrs(pid) {
		known[a.String()] = true
	}
	addrs := h.Peerstore().AddrStream(ctx, pid)

	var lastErr error
	results := make(chan error, 1)
	dialing, again := false, false
	dial := func() {
		if dialing {
			again = true // once this dial ends: it may predate what is new
			return
		}
		dialing, again = true, false
		// This loop paces its own dials: the swarm's backoff from an
		// earlier failure (e.g. before any address was known) must not.
		clearBackoff(h, pid)
		go func() { results <- h.Connect(limitedOK(ctx), peer.AddrInfo{ID: pid}) }()
	}
	// Every return waits for the dial in flight: none outlives the call.
	settle := func() {
		if dialing {
			cancel()
			if err := <-results; err != nil && lastErr == nil {
				lastErr = err
			}
			dialing = false
		}
	}
	defer settle()

	retry := time.NewTicker(reachRetry)
	defer retry.Stop()
	dial()
	for !reached(h, pid) {
		select {
		case err := <-results:
			dialing = false
			if err != nil {
				lastErr = err
				if !reached(h, pid) && refused(err) && !again {
					// Its addresses were dialed and answered no: a peer
					// that has gone, whose requests must fail over now.
					return unreachedError(pid, time.Since(start), lastErr, errRefused)
				}
			}
			if again {
				dial()
			}
		case <-sub.Out():
			// Any peer's change: the loop's condition looks at pid's.
		case a, ok := <-addrs:
			if !ok {
				addrs = nil // ctx is done: the case below returns
				continue
			}
			if !known[a.String()] {
				known[a.String()] = true
				dial()
			}
		case <-retry.C:
			if !dialing {
				dial()
			}
		case <-stopped.Done():
			settle()
			return ErrClosed
		case <-ctx.Done():
			settle()
			return unreachedError(pid, time.Since(start), lastErr, context.Cause(ctx))
		}
	}
	return nil
}

// errRefused is the cause of a wait ended by a dial that reached the
// peer's addresses and was turned down.
var errRefused = errors.New("its addresses were dialed and none answered")

// refused says whether a dial failed for good, at the peer's addresses,
// rather than for want of addresses (the peer is not known yet) or for a
// backoff or a dial already under way: those are waited out.
func refused(err error) bool {
	return !errors.Is(err, swarm.ErrNoAddresses) && !errors.Is(err, swarm.ErrDialBackoff) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// unreachedError says that pid was not reached within waited, why the
// wait ended, and what the last dial found.
func unreachedError(pid peer.ID, waited time.Duration, lastErr, cause error) error {
	if errors.Is(cause, errRefused) {
		return fmt.Errorf("peer %s is not reachable: %w; the last dial said: %v", pid, cause, lastErr)
	}
	waited = waited.Round(10 * time.Millisecond)
	if lastErr == nil {
		return fmt.Errorf("peer %s could not be reached within %v (%w): is it running and a member of this mesh?", pid, waited, cause)
	}
	return fmt.Errorf("peer %s could not be reached within %v (%w); the last dial said: %v", pid, waited, cause, lastErr)
}
