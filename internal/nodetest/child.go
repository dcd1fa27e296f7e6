package nodetest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Child is a process a node started (llama-server, rpc-server): its
// command line and environment.
type Child struct {
	PID  int
	Args []string
	Env  []string
}

// FindChild finds the running child process of parent that runs one of the
// programs names (e.g. "llama-server"), whether directly or through the
// runtime's dynamic loader.
func FindChild(parent int, names ...string) (Child, error) {
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, stat := range procs {
		data, err := os.ReadFile(stat)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		open, closing := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
		if open < 0 || closing < open {
			continue
		}
		fields := strings.Fields(string(data[closing+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(parent) {
			continue
		}
		dir := filepath.Dir(stat)
		pid, _ := strconv.Atoi(filepath.Base(dir))
		cmdline, err1 := os.ReadFile(filepath.Join(dir, "cmdline"))
		environ, err2 := os.ReadFile(filepath.Join(dir, "environ"))
		if err := errors.Join(err1, err2); err != nil {
			continue // gone meanwhile
		}
		split := func(b []byte) []string { return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") }
		args := split(cmdline)
		if !slices.ContainsFunc(args, func(a string) bool { return slices.Contains(names, filepath.Base(a)) }) {
			continue
		}
		return Child{PID: pid, Args: args, Env: split(environ)}, nil
	}
	return Child{}, fmt.Errorf("process %d runs none of %v", parent, names)
}
