//go:build unix && !linux

package engine

import "syscall"

func setDeathSignal(*syscall.SysProcAttr) {}
