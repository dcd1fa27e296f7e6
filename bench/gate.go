package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
	"github.com/potluck-gpu/potluck/rpcgate"
)

// benchGate measures what the RPC gate costs a split: one model split over
// two RPC workers, once with each worker's stream carried through the gate
// by a loopback listener in this process (rpcgate.Pipe, as a sharing node
// carries them: one more hop, and the checks), once with the workers
// reached directly. Each split has workers of its own: a worker serves one
// head at a time.
func (b *bench) benchGate(ctx context.Context) {
	const sec = "gate"
	// The bench model, whose tokens take so little computing that the
	// gate's cost per message shows at its largest, and a generated model
	// of 400 MB, closer to what a split carries.
	sized := filepath.Join(b.tmp, "gate-llama.gguf")
	if err := ggufgen.WriteFile(sized, ggufgen.TinyLlama{Vocab: 32000, Embd: 1024, Layers: 8, Heads: 16, KVHeads: 4, FF: 2816, Context: 512, Seed: 11}); err != nil {
		b.report.fail(sec, "sharded decode through the RPC gate, 400 MB", err)
		sized = ""
	}
	for _, m := range []struct{ name, path, alias string }{{b.alias, b.model, b.alias}, {"400 MB generated", sized, "gate-llama"}} {
		if m.path == "" || ctx.Err() != nil {
			continue
		}
		b.gateFigure(ctx, sec, m.name, m.path, m.alias)
		b.runCleanups(false) // its four workers and two heads
	}
}

func (b *bench) gateFigure(ctx context.Context, sec, name, model, alias string) {
	what := "decode through the RPC gate, " + name
	fail := func(err error) { b.report.fail(sec, what, err) }
	urls := map[bool]string{}
	for _, gated := range []bool{true, false} {
		var relays []string
		for i := range 2 {
			addr, err := b.rpcWorker(fmt.Sprintf("rpc-server %d (gate %v)", i, gated))
			if err != nil {
				fail(err)
				return
			}
			if !gated {
				relays = append(relays, addr)
				continue
			}
			relay, err := b.gateRelay(addr)
			if err != nil {
				fail(err)
				return
			}
			relays = append(relays, relay)
		}
		url, err := b.llamaServer(fmt.Sprintf("llama-server (gate %v)", gated), engine.ServerSpec{Model: model, Alias: alias, RPC: relays})
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
	b.report.add(Figure{Section: sec, Name: what + ", 2 workers", Unit: "tok/s", Value: on, Runs: round(rates[true], 1),
		Anchor: "the same split, workers reached directly", AnchorValue: off, AnchorRuns: round(rates[false], 1),
		Relation: fmt.Sprintf("%.1f%% slower", slower), Target: "<= 2% slower", Met: met(slower <= 2),
		Note: "each worker's stream carried on loopback by this process through rpcgate.Pipe (one more hop, and the checks), against the head's --rpc pointed at the workers; two workers and a head per case; llama.cpp's decode rate for " +
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

// gateRelay listens on loopback and carries each connection to addr
// through the gate, until the benchmark section ends.
func (b *bench) gateRelay(addr string) (string, error) {
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
			go rpcgate.Pipe(head, worker, rpcgate.Limits{})
		}
	}()
	return l.Addr().String(), nil
}
