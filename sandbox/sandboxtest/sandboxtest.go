// Package sandboxtest checks, from outside, that a process runs confined.
package sandboxtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// RequireConfined fails the test unless /proc/PID/status of pid shows
// no_new_privs and a seccomp filter, and each of more ("CapEff:\t0…").
// what names the process in the failure.
func RequireConfined(t testing.TB, pid int, what string, more ...string) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for _, want := range append([]string{"NoNewPrivs:\t1", "Seccomp:\t2"}, more...) {
		if !strings.Contains(string(status), want) {
			t.Errorf("%s (%d): /proc/PID/status lacks %q", what, pid, want)
		}
	}
}

// Process is the process whose command line has word, a child of parent
// where parent is not 0. It fails the test when there is none.
func Process(t testing.TB, parent int, word string) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if parent != 0 {
			stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if err != nil {
				continue
			}
			// pid (comm) state ppid …: comm may hold spaces, so from the last ')'.
			fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
			if len(fields) < 2 || fields[1] != strconv.Itoa(parent) {
				continue
			}
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(strings.ReplaceAll(string(cmd), "\x00", " "), word) {
			return pid
		}
	}
	t.Fatalf("no process runs %q", word)
	return 0
}
