package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/rpcgate"
)

// benchGate measures what the RPC gate costs a split: one model split over
// two RPC workers, its streams carried by loopback relays in this process,
// once through the gate (rpcgate.Pipe, as a sharing node carries them) and
// once copied as they are. Each split has workers of its own: a worker
// serves one head at a time.
func (b *bench) benchGate(ctx context.Context) {
	const sec = "gate"
	fail := func(err error) { b.report.fail(sec, "sharded decode through the RPC gate", err) }
	urls := map[bool]string{}
	for _, gated := range []bool{true, false} {
		var relays []string
		for i := range 2 {
			addr, err := b.rpcWorker(fmt.Sprintf("rpc-server %d (gate %v)", i, gated))
			if err != nil {
				fail(err)
				return
			}
			relay, err := b.relay(addr, gated)
			if err != nil {
				fail(err)
				return
			}
			relays = append(relays, relay)
		}
		url, err := b.llamaServer(fmt.Sprintf("llama-server (gate %v)", gated), engine.ServerSpec{Model: b.model, Alias: b.alias, RPC: relays})
		if err != nil {
			fail(err)
			return
		}
		urls[gated] = url
	}
	rates := map[bool][]float64{}
	for _, gated := range []bool{true, false} { // warm-up
		if _, err := decodeRate(urls[gated]); err != nil {
			fail(err)
			return
		}
	}
	for range b.runs {
		for _, gated := range []bool{true, false} {
			if ctx.Err() != nil {
				return
			}
			r, err := decodeRate(urls[gated])
			if err != nil {
				fail(err)
				return
			}
			rates[gated] = append(rates[gated], r)
		}
	}
	on, off := median(rates[true]), median(rates[false])
	slower := 100 * (1 - on/off)
	b.report.add(Figure{Section: sec, Name: "decode, 2 workers through the RPC gate", Unit: "tok/s", Value: on, Runs: round(rates[true], 0),
		Anchor: "the same split, streams copied as they are", AnchorValue: off, AnchorRuns: round(rates[false], 0),
		Relation: fmt.Sprintf("%.1f%% slower", slower), Target: "<= 2% slower", Met: met(slower <= 2),
		Note: "each worker's stream relayed on loopback by this process, through rpcgate.Pipe or io.Copy; two workers and a head per case; llama.cpp's decode rate for " +
			strconv.Itoa(decodeTokens) + " greedy tokens"})
}

// rpcWorker starts an RPC worker on a free loopback port and returns its
// address.
func (b *bench) rpcWorker(name string) (string, error) {
	port, err := engine.FreePort()
	if err != nil {
		return "", err
	}
	spec := b.rt.WorkerSupervisorSpec(engine.WorkerSpec{Port: port, Threads: 1})
	if _, _, err := b.llama(name, spec, 30*time.Second); err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(port), nil
}

// relay listens on loopback and carries each connection to addr, through
// the gate or as it is, until the benchmark section ends.
func (b *bench) relay(addr string, gated bool) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	b.cleanup(func() { l.Close() })
	go func() {
		for {
			head, err := l.Accept()
			if err != nil {
				return
			}
			worker, err := net.Dial("tcp", addr)
			if err != nil {
				head.Close()
				continue
			}
			if gated {
				go rpcgate.Pipe(head, worker, rpcgate.Limits{})
				continue
			}
			go func() {
				go func() { io.Copy(worker, head); worker.Close() }()
				io.Copy(head, worker)
				head.Close()
			}()
		}
	}()
	return l.Addr().String(), nil
}
