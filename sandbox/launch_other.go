//go:build !linux && !windows && !darwin

package sandbox

import (
	"fmt"
	"runtime"
)

// Launches says whether the launcher confines children on this OS.
const Launches = false

func launch(p Policy, prog string, argv, env []string) error {
	return fmt.Errorf("sandbox: the launcher confines children on Linux only, not on %s", runtime.GOOS)
}

// Supported says what this machine enforces of a policy: nothing yet
// outside Linux.
func Supported() Support {
	return Support{Missing: fmt.Sprintf("llama.cpp's children are not sandboxed on %s yet", runtime.GOOS)}
}

func capMemory(max uint64, prog string, args []string) (string, []string) { return prog, args }

func memoryCapMissing() string { return "" }
