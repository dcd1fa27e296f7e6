package sandbox

import (
	"fmt"
	"os"
	"syscall"
)

// sandboxExec is macOS's own program that applies a profile to itself and
// executes a program under it.
const sandboxExec = "/usr/bin/sandbox-exec"

// Launches says whether the launcher confines children on this OS: on
// macOS only when POTLUCK_MACOS_SANDBOX=1 asks for it, until the profile
// has been run on a Mac, since a profile that keeps Metal from the GPU
// would keep every model from loading.
var Launches = os.Getenv(MacOSEnv) == "1"

// MacOSEnv turns the sandbox-exec profile on.
const MacOSEnv = "POTLUCK_MACOS_SANDBOX"

// launch executes prog through sandbox-exec with p as its profile: the
// launcher only hands over, and the profile holds for the child.
func launch(p Policy, prog string, argv, env []string) error {
	if p.Dir != "" {
		if err := os.Chdir(p.Dir); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
	}
	args := append([]string{sandboxExec, "-p", Profile(p.withSystem()), prog}, argv[1:]...)
	if err := syscall.Exec(sandboxExec, args, env); err != nil {
		return fmt.Errorf("sandbox: %s: %w", sandboxExec, err)
	}
	return nil
}

// withSystem marks what any program needs of macOS, which Profile adds.
func (p Policy) withSystem() Policy {
	p.System = true
	return p
}

// Supported says what this machine enforces of a policy.
func Supported() Support {
	switch _, err := os.Stat(sandboxExec); {
	case err != nil:
		return Support{Missing: "this Mac has no " + sandboxExec + ": llama.cpp's children run unconfined"}
	case !Launches:
		return Support{Missing: "llama.cpp's children run unconfined on macOS; " + MacOSEnv + "=1 runs them under a sandbox-exec profile (see the README's Security section) not yet tried on a Mac"}
	}
	return Support{Missing: "llama.cpp's children run under a sandbox-exec profile (" + MacOSEnv + "=1) not yet tried on a Mac"}
}

// capMemory leaves the memory of a child on macOS as it is.
func capMemory(max uint64, prog string, args []string) (string, []string) { return prog, args }

func memoryCapMissing() string { return "" }
