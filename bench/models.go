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
// (app/labtest, TestLabBenchModels and TestLabInternet) and prints its
// figures as LABFIG lines, read here.
func (b *bench) benchModels(ctx context.Context) {
	const sec = "models"
	if os.Geteuid() != 0 {
		b.report.fail(sec, "pull from peers, seeded split", errors.New("needs root for the namespace lab (run make bench as root)"))
		return
	}
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-timeout", "30m", "-p", "1", "-v",
		"-run", "^(TestLabBenchModels|TestLabBenchRealSize|TestLabInternet)$", "./app/labtest/")
	cmd.Env = append(os.Environ(), "POTLUCK_LAB_BENCH=1")
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
		b.report.fail(sec, "pull from peers, seeded split", fmt.Errorf("lab benchmark: %v, %d figures\n%s", err, found, tail))
	}
}
