package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
	"github.com/potluck-gpu/potluck/hw"
)

// calibrationDepths are the layer counts of the generated models whose
// decode times give the CPU backend's cost per token and per layer.
var calibrationDepths = []int{1, 5, 10, 20, 40}

// calibrationDelay is the one-way delay the proxy adds to find how many
// round trips a token makes to a worker.
const calibrationDelay = 2 * time.Millisecond

// benchCalibrate measures what the constants of the speed model
// (engine/speed.go) stand for, on this machine, beside the values in the
// code: the CPU backend's cost per token and per layer, and what one RPC
// worker adds to a token (synchronous round trips, and llama.cpp's part of
// the fixed cost; the tunnel's part is in the shard section's rows). It
// runs llama.cpp only, no potluck process, and is not part of the default
// run: go run ./bench -only calibrate.
func (b *bench) benchCalibrate(ctx context.Context) {
	const sec = "calibrate"
	bw := hw.MeasureMemoryBandwidth(ctx)
	cpu := engine.CPUSpeed(bw)
	b.report.Settings["host_bandwidth"] = fmt.Sprintf("%.1f GB/s", bw/1e9)

	// The CPU backend: generated models of the bench model's shape, of
	// several depths, each in one llama-server.
	type depth struct {
		layers int
		url    string
		read   float64 // s: reading its weights, as the speed model counts it
		model  float64 // s: the speed model's time per token
		runs   []float64
	}
	var depths []*depth
	for _, n := range calibrationDepths {
		m := ggufgen.DefaultTinyLlama()
		m.Layers = n
		path := filepath.Join(b.tmp, fmt.Sprintf("calibrate-%02d.gguf", n))
		if err := ggufgen.WriteFile(path, m); err != nil {
			b.report.fail(sec, "CPU cost per layer", err)
			return
		}
		p, err := cpuPlan(path, bw)
		if err != nil {
			b.report.fail(sec, "CPU cost per layer", err)
			return
		}
		s := p.Devices[0].Seconds
		url, err := b.llamaServer(fmt.Sprintf("llama-server (%d layers)", n), engine.ServerSpec{Model: path, Devices: []string{"none"}})
		if err != nil {
			b.report.fail(sec, "CPU cost per layer", err)
			return
		}
		depths = append(depths, &depth{layers: n, url: url, model: s, read: s - cpu.BaseSeconds - float64(n)*cpu.LayerSeconds})
	}

	// One worker: the bench model split as a head with one worker splits
	// it, to an rpc-server reached directly, and through a proxy that
	// delays each direction; and the same model in one process.
	split, err := workerPlan(b.model, bw, noDistance)
	if err != nil {
		b.report.fail(sec, "RPC round trips per token", err)
		return
	}
	far, err := workerPlan(b.model, bw, 10*time.Millisecond)
	if err != nil {
		b.report.fail(sec, "RPC round trips per token", err)
		return
	}
	single, err := cpuPlan(b.model, bw)
	if err != nil {
		b.report.fail(sec, "RPC round trips per token", err)
		return
	}
	var workers []string
	for i := range 2 { // an rpc-server serves one client at a time
		port, err := engine.FreePort()
		if err != nil {
			b.report.fail(sec, "RPC round trips per token", err)
			return
		}
		if _, _, err := b.llama(fmt.Sprintf("rpc-server %d", i), b.rt.WorkerSupervisorSpec(engine.WorkerSpec{Port: port, Threads: 1}), 30*time.Second); err != nil {
			b.report.fail(sec, "RPC round trips per token", err)
			return
		}
		workers = append(workers, "127.0.0.1:"+strconv.Itoa(port))
	}
	proxy, err := newDelayProxy(workers[1])
	if err != nil {
		b.report.fail(sec, "RPC round trips per token", err)
		return
	}
	b.cleanup(proxy.close)
	splitSpec := func(rpc string) engine.ServerSpec {
		return engine.ServerSpec{Model: b.model, RPC: []string{rpc}, Devices: split.ServerDevices, GPULayers: split.GPULayers, TensorSplit: split.TensorSplit}
	}
	directURL, err := b.llamaServer("llama-server (1 worker, direct)", splitSpec(workers[0]))
	if err == nil {
		var delayedURL, singleURL string
		if delayedURL, err = b.llamaServer("llama-server (1 worker, delayed)", splitSpec(proxy.addr)); err == nil {
			singleURL, err = b.llamaServer("llama-server (single)", engine.ServerSpec{Model: b.model, Devices: []string{"none"}})
		}
		if err == nil {
			err = b.calibrateRPC(ctx, sec, proxy, directURL, delayedURL, singleURL, split, far, single)
		}
	}
	if err != nil {
		b.report.fail(sec, "RPC round trips per token", err)
	}

	for _, d := range depths { // warm-up
		if _, err := decodeRate(d.url); err != nil {
			b.report.fail(sec, "CPU cost per layer", err)
			return
		}
	}
	for range b.runs {
		for _, d := range depths {
			if ctx.Err() != nil {
				return
			}
			r, err := decodeRate(d.url)
			if err != nil {
				b.report.fail(sec, "CPU cost per layer", err)
				return
			}
			d.runs = append(d.runs, 1e6/r)
		}
	}
	var xs, ys []float64
	var each []string
	for _, d := range depths {
		m := median(d.runs)
		xs, ys = append(xs, float64(d.layers)), append(ys, m-d.read*1e6)
		each = append(each, fmt.Sprintf("%d: %.0f (model %.0f)", d.layers, m, d.model*1e6))
	}
	slope, intercept := linearFit(xs, ys)
	note := fmt.Sprintf("least squares over generated models of stories260K's shape (ggufgen, 1 thread) of the time per token less the speed model's time to read the weights at the host's %.1f GB/s, against layers; µs per token by layers: %s",
		bw/1e9, strings.Join(each, ", "))
	b.report.add(Figure{Section: sec, Name: "CPU cost per layer", Unit: "µs", Value: slope,
		Anchor: "cpuLayerSeconds", AnchorValue: cpu.LayerSeconds * 1e6, Relation: fmt.Sprintf("%.2fx the constant", slope/(cpu.LayerSeconds*1e6)), Note: note})
	b.report.add(Figure{Section: sec, Name: "CPU cost per token", Unit: "µs", Value: intercept,
		Anchor: "cpuBaseSeconds", AnchorValue: cpu.BaseSeconds * 1e6, Relation: fmt.Sprintf("%.2fx the constant", intercept/(cpu.BaseSeconds*1e6))})
}

// calibrateRPC measures the round trips a token makes to one worker (the
// time per token added by a delay, over the round trip the delay adds) and
// the fixed cost the worker adds besides those round trips.
//
// split is the speed model's plan with the worker at no distance, far the
// same 10 ms away, and single the model on one CPU.
func (b *bench) calibrateRPC(ctx context.Context, sec string, proxy *delayProxy, directURL, delayedURL, singleURL string, split, far, single engine.Plan) error {
	const name = "RPC round trips per token"
	echo, stop, err := serveBench()
	if err != nil {
		return err
	}
	defer stop()
	raw, err := rtt(echo)
	if err != nil {
		return err
	}
	for _, u := range []string{directURL, delayedURL, singleURL} { // warm-up
		if _, err := decodeRate(u); err != nil {
			return err
		}
	}
	var direct, alone, near, delayed []float64 // µs per token
	for range b.runs {
		for _, step := range []struct {
			url   string
			delay time.Duration
			into  *[]float64
		}{{directURL, 0, &direct}, {singleURL, 0, &alone}, {delayedURL, 0, &near}, {delayedURL, calibrationDelay, &delayed}} {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			proxy.delay.Store(int64(step.delay))
			r, err := decodeRate(step.url)
			if err != nil {
				return err
			}
			*step.into = append(*step.into, 1e6/r)
		}
	}
	proxy.delay.Store(0)

	// What the speed model says: the network time of one worker at no
	// distance and 10 ms away, and what the split's devices take beyond
	// the one process's.
	modelFixed := split.NetworkSeconds * 1e6
	modelTrips := (far.NetworkSeconds - split.NetworkSeconds) / 0.010
	var devices float64
	for _, a := range split.Devices {
		devices += a.Seconds
	}
	extra := (devices - single.Devices[0].Seconds) * 1e6
	rawUS := float64(raw.Nanoseconds()) / 1e3

	// Each run pairs its measurements: they were taken one after another.
	var trips, fixed []float64
	for i := range near {
		trips = append(trips, (delayed[i]-near[i])/(2*float64(calibrationDelay.Microseconds())))
	}
	t := median(trips)
	for i := range direct {
		fixed = append(fixed, direct[i]-alone[i]-extra-t*rawUS)
	}
	f := median(fixed)
	b.report.add(Figure{Section: sec, Name: "RPC round trips per token", Unit: "round trips", Value: t, Runs: round(trips, 2),
		Anchor: "rpcRoundTrips", AnchorValue: modelTrips, Relation: fmt.Sprintf("%.2fx the constant", t/modelTrips),
		Note: fmt.Sprintf("the bench model split as a head with one worker splits it (--device %s -ngl %d), the worker behind a proxy in this process that holds back each direction by %v or not, interleaved: (time per token held back − not) / the %v added to a round trip; µs per token %.0f and %.0f",
			strings.Join(split.ServerDevices, ","), split.GPULayers, calibrationDelay, 2*calibrationDelay, median(delayed), median(near))})
	b.report.add(Figure{Section: sec, Name: "RPC cost per worker, direct", Unit: "µs", Value: f, Runs: round(fixed, 0),
		Anchor: "rpcSeconds", AnchorValue: modelFixed, Relation: fmt.Sprintf("llama.cpp's part: %.2fx the constant", f/modelFixed),
		Note: fmt.Sprintf("time per token with the worker reached directly (%.0f µs) less one process's (%.0f µs), less what the speed model gives the worker's device (%.0f µs) and the round trips at loopback's %.0f µs; rpcSeconds also holds Potluck's tunnel, which the shard rows measure",
			median(direct), median(alone), extra, rawUS)})
	return nil
}

// llamaServer starts a llama-server for spec with the bench's settings (a
// free port, 512 tokens of context, 1 thread) and returns its URL.
func (b *bench) llamaServer(name string, spec engine.ServerSpec) (string, error) {
	port, err := engine.FreePort()
	if err != nil {
		return "", err
	}
	spec.Port, spec.CtxSize, spec.Threads = port, 512, 1
	if _, _, err := b.llama(name, b.rt.ServerSupervisorSpec(spec), 60*time.Second); err != nil {
		return "", err
	}
	return fmt.Sprintf("http://127.0.0.1:%d", port), nil
}

const calibrationOffer = 1 << 40 // room for any test model

func cpuDevice(bw float64) engine.PlanDevice {
	return engine.PlanDevice{Name: "CPU", Backend: "CPU", Offer: calibrationOffer, Speed: engine.CPUSpeed(bw)}
}

// cpuPlan is the speed model's plan for model on this CPU alone.
func cpuPlan(model string, bw float64) (engine.Plan, error) {
	est, err := engine.EstimateModel(model, 512)
	if err != nil {
		return engine.Plan{}, err
	}
	p := engine.MakePlan(engine.PlanInput{Model: est, Head: engine.Candidate{ID: "head", Name: "head", Devices: []engine.PlanDevice{cpuDevice(bw)}}})
	if !p.Fits || len(p.Devices) != 1 {
		return p, fmt.Errorf("plan of %s on the CPU: %s", filepath.Base(model), p.Reason)
	}
	return p, nil
}

// workerPlan is the speed model's plan for model over this CPU and one
// worker's CPU rtt away, all layers spread (--split all).
func workerPlan(model string, bw float64, rtt time.Duration) (engine.Plan, error) {
	est, err := engine.EstimateModel(model, 512)
	if err != nil {
		return engine.Plan{}, err
	}
	node := func(id string) engine.Candidate {
		return engine.Candidate{ID: id, Name: id, RPCProtocol: rpcProtocol, Devices: []engine.PlanDevice{cpuDevice(bw)}}
	}
	w := node("worker")
	w.RTT = rtt
	p := engine.MakePlan(engine.PlanInput{Model: est, Mode: engine.SplitAll, Protocol: rpcProtocol, Head: node("head"), Workers: []engine.Candidate{w}})
	if !p.Fits || len(p.Workers) != 1 {
		return p, fmt.Errorf("plan of %s over a worker: %s", filepath.Base(model), p.Reason)
	}
	return p, nil
}

// noDistance is the round trip of a worker at no distance: measured, and
// next to nothing (a worker not measured yet is taken for a LAN's).
const noDistance = time.Nanosecond

// rpcProtocol is the llama.cpp RPC protocol the plans above assume.
const rpcProtocol = "8.0.0"

// linearFit returns the least-squares line through (xs, ys).
func linearFit(xs, ys []float64) (slope, intercept float64) {
	var sx, sy, sxx, sxy float64
	n := float64(len(xs))
	for i := range xs {
		sx, sy = sx+xs[i], sy+ys[i]
		sxx, sxy = sxx+xs[i]*xs[i], sxy+xs[i]*ys[i]
	}
	slope = (n*sxy - sx*sy) / (n*sxx - sx*sx)
	return slope, (sy - slope*sx) / n
}

// delayProxy forwards TCP connections to a target, holding back what
// passes in each direction by delay (a link with that latency, not a
// slower one).
type delayProxy struct {
	addr  string
	delay atomic.Int64 // nanoseconds, one way
	ln    net.Listener
	once  sync.Once
}

func newDelayProxy(target string) (*delayProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &delayProxy{addr: ln.Addr().String(), ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go p.pipe(c, s)
			go p.pipe(s, c)
		}
	}()
	return p, nil
}

func (p *delayProxy) close() { p.once.Do(func() { p.ln.Close() }) }

// pipe copies src to dst, each chunk delay after it was read.
func (p *delayProxy) pipe(src, dst net.Conn) {
	type chunk struct {
		due  time.Time
		data []byte
	}
	ch := make(chan chunk, 1024)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				ch <- chunk{time.Now().Add(time.Duration(p.delay.Load())), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	defer dst.Close()
	defer src.Close()
	for c := range ch {
		if d := time.Until(c.due); d > 0 {
			time.Sleep(d)
		}
		if _, err := dst.Write(c.data); err != nil {
			io.Copy(io.Discard, src)
			return
		}
	}
}
