package engine

import (
	"os/exec"
	"time"
)

const exeSuffix = ".exe"

// configureProcess stops the child when its context ends. Windows has no
// SIGTERM; the child is killed and Wait gives up after grace.
func configureProcess(cmd *exec.Cmd, grace time.Duration) {
	cmd.WaitDelay = grace
}

func killGroup(*exec.Cmd) {}
