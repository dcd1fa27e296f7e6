//go:build unix

package engine

import (
	"os/exec"
	"syscall"
	"time"
)

const exeSuffix = ""

// configureProcess puts the child in its own process group, stops the whole
// group with SIGTERM when its context ends, and lets Wait kill it after grace.
func configureProcess(cmd *exec.Cmd, grace time.Duration) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	setDeathSignal(cmd.SysProcAttr)
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	cmd.WaitDelay = grace
}

// killGroup kills whatever is left in the child's process group.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// release has nothing to let go of: afterStart took nothing.
func release(*exec.Cmd) {}

// afterStart has nothing to do: the process group and the parent-death
// signal already tie the child to Potluck.
func afterStart(*exec.Cmd) error { return nil }

// noWindow has nothing to do: only Windows opens windows for consoles.
func noWindow(*exec.Cmd) {}
