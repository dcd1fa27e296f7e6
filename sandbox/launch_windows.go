package sandbox

import "fmt"

// Launches says whether the launcher confines children on this OS: on
// Windows they are contained once started instead (Contain).
const Launches = false

func launch(p Policy, prog string, argv, env []string) error {
	return fmt.Errorf("sandbox: Windows contains children once started; it has no launcher")
}

// Supported says what this machine enforces of a policy: on Windows, the
// job's limits, and not the files a child may read.
func Supported() Support {
	return Support{Missing: "on Windows llama.cpp's children run in a Job Object (no other programs, no desktop or clipboard, " +
		"a memory cap for the shard worker) with your user's access to files: lend to members you trust (--lend-to)"}
}

// capMemory has nothing to do on Windows: the job caps it (Contain).
func capMemory(max uint64, prog string, args []string) (string, []string) { return prog, args }

func memoryCapMissing() string { return "" }
