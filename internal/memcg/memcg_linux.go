package memcg

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Group is a memory cgroup below this process's own.
type Group struct {
	dir string
}

// New makes a cgroup named name below this process's memory cgroup, with
// a limit of limit bytes, or says why it cannot here (no cgroup file
// system, no rights, cgroup v2 with the memory controller not delegated).
func New(name string, limit int64) (*Group, error) {
	own, v2, err := ownDir()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(own, name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("memory cgroup: %w", err)
	}
	g := &Group{dir: dir}
	file, value := "memory.limit_in_bytes", strconv.FormatInt(limit, 10)
	if v2 {
		file = "memory.max"
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0o644); err != nil {
		g.Close()
		return nil, fmt.Errorf("memory cgroup limit: %w", err)
	}
	if v2 {
		// No swap to escape to, as with v1's memory limit alone.
		_ = os.WriteFile(filepath.Join(dir, "memory.swap.max"), []byte("0"), 0o644)
	}
	return g, nil
}

// Procs is the file a process writes its pid to to join the group.
func (g *Group) Procs() string { return filepath.Join(g.dir, "cgroup.procs") }

// Add moves the process pid into the group. Its memory from before stays
// charged where it was; what it allocates from now on counts here.
func (g *Group) Add(pid int) error {
	return os.WriteFile(g.Procs(), []byte(strconv.Itoa(pid)), 0o644)
}

// OOMKills is how many of the group's processes the out-of-memory killer
// killed; -1 where the kernel does not say.
func (g *Group) OOMKills() int {
	for _, f := range []string{"memory.events", "memory.oom_control"} {
		data, err := os.ReadFile(filepath.Join(g.dir, f))
		if err != nil {
			continue
		}
		for line := range bytes.Lines(data) {
			if v, ok := bytes.CutPrefix(line, []byte("oom_kill ")); ok {
				n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
				if err == nil {
					return n
				}
			}
		}
	}
	return -1
}

// Close removes the group once its processes are gone.
func (g *Group) Close() error { return os.Remove(g.dir) }

// ownDir is the directory of this process's memory cgroup, and whether
// it is cgroup v2's.
func ownDir() (string, bool, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	var unified string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-id:controllers:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" && parts[0] == "0" {
			unified = parts[2]
		}
		if slices.Contains(strings.Split(parts[1], ","), "memory") {
			dir := filepath.Join("/sys/fs/cgroup/memory", parts[2])
			if _, err := os.Stat(filepath.Join(dir, "memory.limit_in_bytes")); err == nil {
				return dir, false, nil
			}
		}
	}
	if unified != "" {
		// New says so when the memory controller is not delegated here.
		return filepath.Join("/sys/fs/cgroup", unified), true, nil
	}
	return "", false, errors.New("memory cgroup: this system has no memory controller")
}
