package engine

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// oomKills is how many processes the kernel's out-of-memory killer has
// killed since boot (any cgroup's limit, or the machine's); -1 where the
// kernel does not say.
func oomKills() int64 {
	data, err := os.ReadFile("/proc/vmstat")
	if err != nil {
		return -1
	}
	for line := range bytes.Lines(data) {
		if v, ok := bytes.CutPrefix(line, []byte("oom_kill ")); ok {
			n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// oomKilled says whether a child that ended with werr was most likely
// killed by the out-of-memory killer: SIGKILL, with the kernel's count of
// such kills risen since before it started.
func oomKilled(werr error, before int64) bool {
	var ee *exec.ExitError
	if before < 0 || !errors.As(werr, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL && oomKills() > before
}
