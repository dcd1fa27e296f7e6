package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/potluck-gpu/potluck/bench/fig"
)

// benchModels copies models between peers and splits onto workers that
// have the file, over links capped with tc, and joins members across NATs.
// Those need network namespaces, so the namespace lab measures them
// (lab/, TestLabBenchModels and TestLabInternet) and prints its
// figures as LABFIG lines, read here.
func (b *bench) benchModels(ctx context.Context) {
	b.labFigures(ctx, "models", "pull from peers, seeded split", "needs root for the namespace lab (run make bench as root)",
		"./lab/", "^(TestLabBenchModels|TestLabBenchRealSize|TestLabInternet)$", "POTLUCK_LAB_BENCH=1")
}

// benchDraft splits a model over a worker 10 ms away and decodes without
// a draft, with one that agrees and with one that does not (lab's
// TestLabBenchDraft), and a story with each n-gram lookup
// (TestLabBenchLookup).
func (b *bench) benchDraft(ctx context.Context) {
	b.labFigures(ctx, "draft", "speculative decoding on a split", "needs root for the namespace lab (run make bench as root)",
		"./lab/", "^(TestLabBenchDraft|TestLabBenchLookup)$", "POTLUCK_LAB_BENCH=1")
}

// benchStress runs the mesh scenarios of make stress (lab's TestStressMesh)
// -stress-runs times each; its figures carry every run's sample and
// report the p99.
func (b *bench) benchStress(ctx context.Context) {
	b.labFigures(ctx, "stress", "mesh scenarios, repeated", "needs root for the namespace lab (run make bench as root)",
		"./lab/", "^TestStressMesh$", fmt.Sprintf("STRESS_RUNS=%d", b.stressRuns))
}

// benchWindows splits a model of real size onto potluck.exe lending under
// Wine, against a Linux worker: winlab's TestWindowsBenchSplit, which needs
// the Wine harness that `make bench` prepares.
func (b *bench) benchWindows(ctx context.Context) {
	b.labFigures(ctx, "windows", "split onto a worker under Wine", "needs root for the Wine chroot (run make bench as root)",
		"./winlab/", "^TestWindowsBenchSplit$", "POTLUCK_WINE=1", "POTLUCK_WINLAB_BENCH=1")
}

// labFigures runs the tests named by run in pkg, as root, and adds the
// figures they print as LABFIG lines; name is the figure a failure is
// reported under.
func (b *bench) labFigures(ctx context.Context, sec, name, notRoot, pkg, run string, env ...string) {
	if os.Geteuid() != 0 {
		b.report.fail(sec, name, errors.New(notRoot))
		return
	}
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-timeout", "3h", "-p", "1", "-v", "-run", run, pkg)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), fig.LinePrefix)
		if !ok {
			continue
		}
		var f Figure
		if json.Unmarshal([]byte(line), &f) == nil {
			b.report.add(f)
			found++
		}
	}
	if err != nil || found == 0 {
		tail := out.String()
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		b.report.fail(sec, name, fmt.Errorf("%s: %v, %d figures\n%s", pkg, err, found, tail))
	}
}
