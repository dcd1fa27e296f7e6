package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A child's memory is capped where cgroup v2 is delegated to a systemd
// manager: the user's (or the system's, for root) puts the launcher in a
// transient scope of its own with MemoryMax, and the launcher then confines
// itself and becomes the child there. Elsewhere (cgroup v1, no systemd) the
// cap is left out, and Supported says why.

var (
	scopeOnce sync.Once
	scopeArgv []string
	scopeErr  error
)

// memoryScope returns the command that runs a program in a scope of its
// own, or why there is none here. It asks once, with a probe.
func memoryScope() ([]string, error) {
	scopeOnce.Do(func() {
		var st unix.Statfs_t
		if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
			scopeErr = errors.New("this system's cgroups are not version 2")
			return
		}
		run, err := exec.LookPath("systemd-run")
		if err != nil {
			scopeErr = errors.New("there is no systemd-run to make a scope with")
			return
		}
		argv := []string{run, "--scope", "--quiet", "--collect"}
		if os.Geteuid() != 0 {
			argv = append(argv, "--user")
		}
		probe, err := exec.LookPath("true")
		if err != nil {
			scopeErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, argv[0], append(argv[1:], "-p", "MemoryMax=64M", "--", probe)...).CombinedOutput()
		if err != nil {
			scopeErr = fmt.Errorf("systemd could not make a scope with a memory limit (%v): %s", err, lastLine(out))
			return
		}
		scopeArgv = argv
	})
	return scopeArgv, scopeErr
}

// capMemory puts prog and its arguments in a scope whose memory is max
// bytes, where this system can.
func capMemory(max uint64, prog string, args []string) (string, []string) {
	if max == 0 {
		return prog, args
	}
	argv, err := memoryScope()
	if err != nil {
		return prog, args
	}
	return argv[0], append(append(argv[1:], "-p", fmt.Sprintf("MemoryMax=%d", max), "--", prog), args...)
}

// memoryCapMissing says why children's memory cannot be capped here; ""
// where it can.
func memoryCapMissing() string {
	if _, err := memoryScope(); err != nil {
		return "the shard worker's memory is not capped: " + err.Error()
	}
	return ""
}

func lastLine(b []byte) string {
	s := strings.TrimRight(string(b), "\r\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}
