package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
)

// coldTokens is what each cold request asks for: only its first token is
// timed.
const coldTokens = 8

// coldLlama is the generated model of real size: about 595 MiB, F32, of
// the gate section's shape.
var coldLlama = ggufgen.TinyLlama{Vocab: 32000, Embd: 1024, Layers: 8, Heads: 16, KVHeads: 4, FF: 2816, Context: 512, Seed: 13}

// benchCold times a request for a model that is on the node's disk and not
// loaded, from the request to its first token, against llama-server's own
// load of the same model (start to /health) plus the same request's first
// token.
func (b *bench) benchCold(ctx context.Context) {
	const sec = "cold"
	small := filepath.Join(b.tmp, "cold-small")
	err := os.MkdirAll(small, 0o755)
	if err == nil {
		err = copyFile(filepath.Join(small, b.alias+".gguf"), b.model)
	}
	if err != nil {
		b.report.fail(sec, "first token of a cold model, "+b.alias, err)
	} else {
		b.coldFigure(ctx, sec, b.alias, small, b.alias)
	}
	big := filepath.Join(b.tmp, "cold-big")
	err = os.MkdirAll(big, 0o755)
	if err == nil {
		err = ggufgen.WriteFile(filepath.Join(big, "cold-llama.gguf"), coldLlama)
	}
	if err != nil {
		b.report.fail(sec, "first token of a cold model, generated", err)
		return
	}
	if ctx.Err() == nil {
		b.coldFigure(ctx, sec, fmt.Sprintf("%.0f MiB generated", float64(fileSize(big))/(1<<20)), big, "cold-llama")
	}
	os.RemoveAll(big)
}

// coldFigure measures the model name, alone in dir, through a fresh node
// and directly, run by run, the order alternating.
func (b *bench) coldFigure(ctx context.Context, sec, label, dir, name string) {
	what := "first token of a cold model, " + label
	fail := func(err error) { b.report.fail(sec, what, err) }
	size := fileSize(dir)
	// A first load, not counted: it brings the file into the page cache
	// for both paths alike, and its llama-server's command line is the one
	// the anchor runs.
	warm, err := b.coldPotluck(ctx, dir, name)
	if err != nil {
		fail(err)
		return
	}
	var pot, spawned, ready, loads, firsts, totals []float64
	for i := range b.runs {
		order := []bool{true, false}
		if i%2 == 1 {
			order = []bool{false, true}
		}
		for _, viaNode := range order {
			if ctx.Err() != nil {
				return
			}
			if viaNode {
				r, err := b.coldPotluck(ctx, dir, name)
				if err != nil {
					fail(err)
					return
				}
				pot, spawned = append(pot, ms(r.first)), append(spawned, ms(r.spawned))
				if r.ready > 0 {
					ready = append(ready, ms(r.ready))
				}
				continue
			}
			load, first, err := b.coldDirect(ctx, warm.args, name)
			if err != nil {
				fail(err)
				return
			}
			loads, firsts = append(loads, ms(load)), append(firsts, ms(first))
			totals = append(totals, ms(load+first))
		}
	}
	v, a := median(pot), median(totals)
	limit := 1.2*a + 200
	b.report.add(Figure{Section: sec, Name: what, Unit: "ms", Value: v, Runs: round(pot, 1),
		Anchor: "llama-server's load + first token", AnchorValue: a, AnchorRuns: round(totals, 1),
		Relation: fmt.Sprintf("%.2fx, %+.0f ms", v/a, v-a), Target: "<= 1.2x anchor + 200 ms", Met: met(v <= limit),
		Note: fmt.Sprintf("%s (%.0f MiB) alone in --models-dir, no --model; after the node has hashed it and gone idle, one streamed completion naming it (%d tokens), timed to its first token. "+
			"The node started its llama-server %.0f ms after the request (10 ms resolution), which answered /health %.0f ms after it (polled every 5 ms from here). "+
			"Anchor: that llama-server's command line run directly, start to /health 200 (polled every 5 ms) %.0f ms, then the same request's first token %.0f ms. Medians; a fresh node and a fresh llama-server each run, in turn",
			name, float64(size)/(1<<20), coldTokens, median(spawned), median(ready), median(loads), median(firsts))})
}

// coldRun is one request for a model a fresh node had only on disk.
type coldRun struct {
	first   time.Duration // request to first token
	spawned time.Duration // request to the start of the node's llama-server
	ready   time.Duration // request to its /health answering 200; 0: not seen
	args    []string      // that llama-server's command line after the program
}

// coldPotluck starts a node with dir as its only models folder, waits
// until it is settled, asks it for name and stops it.
func (b *bench) coldPotluck(ctx context.Context, dir, name string) (coldRun, error) {
	p, err := b.startPotluck("cold", nil, "--models-dir", dir)
	if err != nil {
		return coldRun{}, err
	}
	defer p.stop(syscall.SIGINT, 15*time.Second)
	if err := p.settle(name); err != nil {
		return coldRun{}, err
	}
	before, err := uptime()
	if err != nil {
		return coldRun{}, err
	}
	wctx, stopWatch := context.WithCancel(ctx)
	readyAt := llamaReadyAt(wctx, p.pid())
	start := time.Now()
	res := path{"potluck", p.api, apiClient}.stream(ctx, name, coldTokens)
	stopWatch()
	var ready time.Duration
	if t, ok := <-readyAt; ok {
		ready = t.Sub(start)
	}
	if res.err != nil {
		return coldRun{}, p.failure(res.err)
	}
	pid, args, err := llamaChild(p.pid())
	if err != nil {
		return coldRun{}, p.failure(err)
	}
	started, err := procStart(pid)
	if err != nil {
		return coldRun{}, err
	}
	p.stop(syscall.SIGINT, 15*time.Second)
	// The node stops its llama-server before it exits; make sure, so that
	// the next run has the machine to itself.
	for deadline := time.Now().Add(10 * time.Second); alive(pid) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid) {
		return coldRun{}, fmt.Errorf("the node's llama-server (pid %d) outlived it", pid)
	}
	return coldRun{first: res.ttfb, spawned: started - before, ready: ready, args: args}, nil
}

// coldDirect runs llama-server with args on a port of its own and returns
// how long it took to answer /health and then to send the first token.
func (b *bench) coldDirect(ctx context.Context, args []string, name string) (load, first time.Duration, err error) {
	port, err := engine.FreePort()
	if err != nil {
		return 0, 0, err
	}
	spec := serverSpecArgs(b.rt, port, withArg(args, "--port", strconv.Itoa(port)))
	c, load, err := b.llama("llama-server (cold)", spec, 2*time.Minute)
	if err != nil {
		return 0, 0, err
	}
	defer c.stop(syscall.SIGTERM, 10*time.Second)
	res := path{"llama-server", fmt.Sprintf("http://127.0.0.1:%d", port), apiClient}.stream(ctx, name, coldTokens)
	if res.err != nil {
		return 0, 0, c.failure(res.err)
	}
	return load, res.ttfb, nil
}

// settle waits until the node lists name with its checksum (hashing a
// large file takes a core for seconds) and has used under 7 % of a core
// over 300 ms: the probe of the machine at start measures its memory
// bandwidth on every core. A node asked for a model some time after it
// started is in this state.
func (p *potluck) settle(name string) error {
	err := p.waitFor(2*time.Minute, 50*time.Millisecond, name+" hashed in /api/models", func() bool {
		var lib struct {
			Models []struct {
				Name   string `json:"name"`
				SHA256 string `json:"sha256"`
			} `json:"models"`
		}
		if getJSON(p.api+"/api/models", &lib) != nil {
			return false
		}
		for _, m := range lib.Models {
			if m.Name == name && m.SHA256 != "" {
				return true
			}
		}
		return false
	})
	if err != nil {
		return err
	}
	const window = 300 * time.Millisecond
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		t0, err := cpuTime(p.pid())
		if err != nil {
			return err
		}
		time.Sleep(window)
		t1, err := cpuTime(p.pid())
		if err != nil {
			return err
		}
		if t1-t0 <= 20*time.Millisecond {
			return nil
		}
	}
	return p.failure(errors.New("the node did not go idle within 30s"))
}

// llamaChild finds the llama-server the process ppid started and returns
// its pid and its arguments. While the sandbox's launcher (the node's own
// program) starts it, its command line holds the same arguments.
func llamaChild(ppid int) (int, []string, error) {
	// Each thread lists the children it started.
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", ppid))
	if err != nil {
		return 0, nil, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			argv, err := cmdline(pid)
			if err != nil {
				continue
			}
			for i, a := range argv {
				if strings.HasSuffix(a, "/llama-server") || a == "llama-server" {
					return pid, argv[i+1:], nil
				}
			}
		}
	}
	return 0, nil, fmt.Errorf("no llama-server among the children of pid %d", ppid)
}

// llamaReadyAt sends when the llama-server that the node ppid starts
// answers /health with 200, polled every 5 ms as the anchor's is; it
// closes the channel without sending if ctx ends first.
func llamaReadyAt(ctx context.Context, ppid int) <-chan time.Time {
	ch := make(chan time.Time, 1)
	go func() {
		defer close(ch)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		base := ""
		for {
			if base == "" {
				if _, args, err := llamaChild(ppid); err == nil && argValue(args, "--port") != "" {
					base = "http://127.0.0.1:" + argValue(args, "--port")
				}
			} else {
				hctx, cancel := context.WithTimeout(ctx, time.Second)
				err := engine.HealthCheck(hctx, base)
				cancel()
				if err == nil {
					ch <- time.Now()
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return ch
}

// statFields are the fields of /proc/pid/stat after the command name: [0]
// is field 3 (state).
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return strings.Fields(s[i+1:]), nil
}

// procStart is when a process started, as time since boot (10 ms steps).
func procStart(pid int) (time.Duration, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ticks, err := strconv.ParseInt(f[19], 10, 64) // field 22, starttime
	if err != nil {
		return 0, err
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// uptime is the time since boot, as procStart counts it.
func uptime() (time.Duration, error) {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, errors.New("/proc/uptime: empty")
	}
	s, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(s * float64(time.Second)), nil
}

// alive reports whether pid is a process that has not been reaped, and is
// not a zombie.
func alive(pid int) bool {
	f, err := statFields(pid)
	return err == nil && len(f) > 0 && f[0] != "Z"
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// fileSize is the size of the files in dir together.
func fileSize(dir string) int64 {
	var n int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}
