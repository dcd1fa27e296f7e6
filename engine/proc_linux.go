package engine

import "syscall"

// setDeathSignal makes the kernel kill the child if potluck itself dies.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
