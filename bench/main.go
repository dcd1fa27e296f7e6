// Command bench measures Potluck's performance figures, each beside an
// anchor measured in the same run (raw TCP, EdgeVPN's default tunnel,
// llama-server reached directly, llama.cpp RPC without the mesh, ...), and
// prints one table. It writes the figures to bench/results.json.
//
//	go run ./bench [-potluck bin/potluck] [-soak 60s]
//
// It runs real `potluck run` processes and real llama.cpp on 127.0.0.1 only,
// and stops everything it started before it exits. See bench/README.md for
// what each figure means.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/engine/ggufgen"
	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/netmesh"
)

// sections in the order they run: the in-process tunnel first, while the
// machine is quiet, then the process-level ones.
var sections = []string{"tunnel", "join", "idle", "proxy", "soak", "shard", "gate", "load", "cold", "models", "draft", "stress", "windows"}

// extraSections run only when -only names them.
var extraSections = []string{"calibrate"}

type bench struct {
	stressRuns int
	potluckBin string
	tmp        string
	rt         engine.Runtime
	model      string // GGUF path
	alias      string
	runs       int
	soak       time.Duration
	streams    int
	idle       time.Duration
	report     *Report

	fed *federation // shared by the proxy and soak sections

	mu       sync.Mutex
	sticky   bool     // while set, cleanups wait for the end of the benchmark
	cleanups []func() // run when the current section ends
	final    []func() // run when the benchmark ends
}

// cleanup registers f to run (last registered first) when the section ends,
// or when the benchmark ends if b.sticky is set.
func (b *bench) cleanup(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sticky {
		b.final = append(b.final, f)
		return
	}
	b.cleanups = append(b.cleanups, f)
}

func (b *bench) runCleanups(all bool) {
	b.mu.Lock()
	fs := b.cleanups
	b.cleanups = nil
	if all {
		fs = append(b.final, fs...)
		b.final = nil
	}
	b.mu.Unlock()
	for _, f := range slices.Backward(fs) {
		f()
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == edgevpnNodeArg {
		os.Exit(edgevpnNodeMain(os.Args[2:]))
	}
	code := run()
	nodetest.RemoveBinary()
	os.Exit(code)
}

func run() int {
	var (
		bin     = flag.String("potluck", "bin/potluck", "the potluck binary to run (built into a temporary directory when missing)")
		out     = flag.String("out", "bench/results.json", "where to write the results")
		runs    = flag.Int("runs", 5, "repetitions of each timed measurement (medians are reported)")
		soak    = flag.Duration("soak", 20*time.Second, "duration of the concurrent-stream soak")
		streams = flag.Int("streams", 64, "concurrent streams in the soak")
		idle    = flag.Duration("idle", 30*time.Second, "how long idle nodes are measured")
		stress  = flag.Int("stress-runs", 5, "runs of each mesh scenario in the stress section (make stress runs 30)")
		only    = flag.String("only", "", "comma-separated sections to run (default all: "+strings.Join(sections, ",")+"; also "+strings.Join(extraSections, ",")+")")
		cpuprof = flag.String("cpuprofile", "", "write a CPU profile of the benchmark process (the in-process tunnels) to `file`")
	)
	flag.Parse()
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	// libp2p and EdgeVPN log to stderr by default; only errors matter here.
	netmesh.RouteLibp2pLogs(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	started := time.Now()
	r := &Report{Started: started, Machine: describeMachine(), Settings: map[string]string{}}
	tmp, err := os.MkdirTemp("", "potluck-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	b := &bench{tmp: tmp, runs: max(1, *runs), soak: *soak, streams: *streams, idle: *idle, stressRuns: max(1, *stress), report: r}
	if err := b.setup(*bin); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	r.Settings = map[string]string{
		"model": filepath.Base(b.model), "runs": fmt.Sprint(b.runs), "soak": b.soak.String(),
		"streams": fmt.Sprint(b.streams), "idle": b.idle.String(), "stress_runs": fmt.Sprint(b.stressRuns), "potluck": b.potluckBin,
		"llama_threads": "1", "out": *out,
	}

	want := sections
	if *only != "" {
		want = strings.Split(*only, ",")
	}
	steps := map[string]func(context.Context){
		"tunnel":  b.benchTunnel,
		"join":    b.benchJoin,
		"idle":    b.benchIdle,
		"proxy":   b.benchProxy,
		"soak":    b.benchSoak,
		"shard":   b.benchShard,
		"gate":    b.benchGate,
		"load":    b.benchLoad,
		"cold":    b.benchCold,
		"models":  b.benchModels,
		"draft":   b.benchDraft,
		"stress":  b.benchStress,
		"windows": b.benchWindows,

		"calibrate": b.benchCalibrate,
	}
	for _, s := range slices.Concat(sections, extraSections) {
		if !slices.Contains(want, s) || ctx.Err() != nil {
			continue
		}
		t := time.Now()
		fmt.Fprintf(os.Stderr, "bench: %s ...\n", s)
		steps[s](ctx)
		b.runCleanups(false)
		fmt.Fprintf(os.Stderr, "bench: %s done in %.0fs\n", s, time.Since(t).Seconds())
	}
	b.runCleanups(true)

	r.Machine.LoadEnd = loadavg()
	r.Duration = time.Since(started).Seconds()
	if err := r.write(*out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
	r.print(os.Stdout)
	if ctx.Err() != nil {
		return 130
	}
	return 0
}

// setup finds llama.cpp, the model and the potluck binary.
func (b *bench) setup(bin string) error {
	rt, err := enginetest.Locator().Find()
	if err != nil {
		return fmt.Errorf("%w (run `make llama`)", err)
	}
	b.rt = rt
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if v, err := rt.Probe(ctx); err == nil {
		b.report.Machine.Llama = fmt.Sprintf("%s, RPC %s", v.Server, v.RPCProtocol)
	}

	if p, ok := enginetest.SharedModel(); ok {
		b.model, b.alias = p, "stories260K"
	} else {
		b.model, b.alias = filepath.Join(b.tmp, "tiny-llama.gguf"), "tiny-llama"
		if err := ggufgen.WriteFile(b.model, ggufgen.DefaultTinyLlama()); err != nil {
			return fmt.Errorf("generate the test model: %w", err)
		}
	}

	if fi, err := os.Stat(bin); err == nil && !fi.IsDir() {
		b.potluckBin, _ = filepath.Abs(bin)
		return nil
	}
	fmt.Fprintln(os.Stderr, "bench: building potluck")
	b.potluckBin, err = nodetest.Build()
	return err
}
