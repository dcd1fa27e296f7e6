// Package sandbox starts llama.cpp's children confined to what serving a
// model needs: a member of the network may use this machine's GPU, not the
// machine. On Linux the child is started through Potluck itself, as a small
// launcher that sets no_new_privs, a Landlock ruleset and a seccomp filter
// on itself and then executes the child in its place; the limits hold for
// the child and cannot be lifted by it.
//
// The launcher is the running program re-executed with Arg as its first
// argument: main calls Launch first thing, and a test binary that starts
// sandboxed children calls it from TestMain.
package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Arg is the first argument that makes the program a launcher.
const Arg = "__potluck-sandbox"

// policyEnv carries the policy to the launcher, which removes it before it
// executes the child.
const policyEnv = "POTLUCK_SANDBOX_POLICY"

// Policy is what a child may touch. Paths are absolute; those that do not
// exist are left out, so a policy can name every place a driver may use.
type Policy struct {
	// Exec are the files the child may execute: its program, or the
	// dynamic loader it is run through. Nothing else can be executed, and
	// the child cannot start other processes.
	Exec []string `json:"exec,omitempty"`
	// Read are files and folders it may read: its runtime, the models.
	Read []string `json:"read,omitempty"`
	// Write are folders it may read and write: its cache and logs.
	Write []string `json:"write,omitempty"`
	// Devices are device files it may drive (read, write, ioctl): GPUs.
	Devices []string `json:"devices,omitempty"`
	// Bind are the TCP ports it may listen on, Connect those it may
	// connect to; it can open no other connection.
	Bind    []uint16 `json:"bind,omitempty"`
	Connect []uint16 `json:"connect,omitempty"`
	// Memory is the most memory it may commit, in bytes; 0: no limit.
	// Windows enforces it (a Job Object), and Linux where cgroup v2 is
	// delegated to systemd (a scope with MemoryMax).
	Memory uint64 `json:"memory,omitempty"`
	// Dir is its working folder, one of Write; "" keeps the caller's.
	Dir string `json:"dir,omitempty"`
	// System adds what any program of the kind needs on this OS: on
	// Linux, the system's libraries, /proc, /sys, the GPU drivers'
	// configuration and device files.
	System bool `json:"system,omitempty"`
}

// Support says what confinement this machine offers.
type Support struct {
	// Landlock is the kernel's Landlock ABI version, 0 without it.
	Landlock int `json:"landlock"`
	// Seccomp is whether seccomp filters can be set.
	Seccomp bool `json:"seccomp"`
	// Missing names what is not enforced here, for a warning: "" when
	// the policy is enforced whole.
	Missing string `json:"missing,omitempty"`
	// NoMemoryCap says why a child's memory is not capped here (Linux
	// without cgroup v2 delegated to systemd); "" where it is.
	NoMemoryCap string `json:"no_memory_cap,omitempty"`
}

// ErrNotLauncher is returned by Launch when the program was not started
// as a launcher.
var ErrNotLauncher = errors.New("not started as the sandbox launcher")

// Launch, when the program was started with Arg, confines itself as its
// policy says and executes the rest of its arguments in its place: it
// returns only on failure. Otherwise it returns ErrNotLauncher at once.
func Launch() error {
	if len(os.Args) < 3 || os.Args[1] != Arg {
		return ErrNotLauncher
	}
	var p Policy
	if err := json.Unmarshal([]byte(os.Getenv(policyEnv)), &p); err != nil {
		return fmt.Errorf("sandbox: the policy: %w", err)
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, policyEnv+"=") })
	return launch(p, os.Args[2], os.Args[2:], env)
}

// LaunchOrExit is Launch for main: it exits with a message when the
// launcher fails, and returns when the program is not a launcher.
func LaunchOrExit() {
	err := Launch()
	if errors.Is(err, ErrNotLauncher) {
		return
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(127)
}

// Wrap returns the program and arguments that start prog with args
// confined by p, through self (the running program, os.Executable), and
// the environment entry that carries the policy.
func Wrap(self string, p Policy, prog string, args []string) (string, []string, string, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return "", nil, "", err
	}
	launcher, argv := capMemory(p.Memory, self, append([]string{Arg, prog}, args...))
	return launcher, argv, policyEnv + "=" + string(data), nil
}
