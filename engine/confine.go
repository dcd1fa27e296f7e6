package engine

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"

	"github.com/potluck-gpu/potluck/sandbox"
)

// Confinement runs llama.cpp's children in the sandbox: each starts
// through Launcher, which confines itself to what that child needs (its
// runtime, its model, its port, its cache) and then becomes the child. A
// member who sends a head or a worker something hostile then reaches a
// process that can read no home folder, write nothing but its cache,
// connect nowhere and start nothing.
type Confinement struct {
	// Launcher is a program whose main calls sandbox.LaunchOrExit first:
	// Potluck itself (os.Executable).
	Launcher string
	// Cache is the folder every child may write: GPU drivers' shader and
	// JIT caches go there (HOME, XDG_CACHE_HOME and CUDA_CACHE_PATH point
	// into it).
	Cache string
}

// Confined returns rt with both binaries started in c's sandbox; nil
// starts them as they are.
func (rt Runtime) Confined(c *Confinement) Runtime {
	rt.Server.Confine, rt.Worker.Confine = c, c
	return rt
}

// CommandIn is Command for a child that also needs what p grants, when
// the binary is confined; otherwise it is Command.
func (b Binary) CommandIn(ctx context.Context, p sandbox.Policy, args ...string) *exec.Cmd {
	prog, argv := b.Argv(args...)
	env := childEnv(os.Environ())
	if c := b.Confine; c != nil && sandbox.Launches {
		// The launcher starts the child in the cache; a failure to make it
		// shows there, in the child's own error.
		_ = os.MkdirAll(c.Cache, 0o700)
		var penv string
		var err error
		prog, argv, penv, err = sandbox.Wrap(c.Launcher, b.policy(p), prog, argv)
		if err == nil {
			env = append(env, penv,
				"HOME="+c.Cache, "XDG_CACHE_HOME="+c.Cache, "CUDA_CACHE_PATH="+filepath.Join(c.Cache, "cuda"),
				"TMPDIR="+c.Cache)
		}
	}
	cmd := exec.CommandContext(ctx, prog, argv...)
	cmd.Env = env
	noWindow(cmd)
	if b.Confine != nil && !sandbox.Launches && sandbox.Contains {
		toContain.Store(cmd, b.policy(p)) // by afterStart
	}
	return cmd
}

// toContain holds the policies of commands whose child is contained once
// it has started (on Windows), until afterStart takes them.
var toContain sync.Map // *exec.Cmd → sandbox.Policy

// policy is p plus what any child of b needs: to execute it (or its
// loader), to read its runtime, to write the shared cache, and the
// system's libraries and GPUs.
func (b Binary) policy(p sandbox.Policy) sandbox.Policy {
	exe := b.Path
	if b.Loader != "" {
		exe = b.Loader
	}
	p.Exec = append(p.Exec, exe)
	p.Read = append(append(p.Read, filepath.Dir(b.Path)), b.LibraryPath...)
	p.Write = append(p.Write, b.Confine.Cache)
	if p.Dir == "" {
		p.Dir = b.Confine.Cache
	}
	p.System = true
	return p
}

// splitPart matches the name of a part of a GGUF split in several files,
// "model-00001-of-00003.gguf"; llama.cpp opens the others from the first.
var splitPart = regexp.MustCompile(`-\d{5}-of-(\d{5})\.gguf$`)

// modelFiles are the files llama.cpp reads for the model at path: path,
// and where it is a part of a split, the other parts beside it.
func modelFiles(path string) []string {
	m := splitPart.FindStringSubmatchIndex(path)
	if m == nil {
		return []string{path}
	}
	parts, _ := filepath.Glob(path[:m[0]] + "-[0-9][0-9][0-9][0-9][0-9]-of-" + path[m[2]:m[3]] + ".gguf")
	if !slices.Contains(parts, path) {
		parts = append(parts, path)
	}
	return parts
}

// connectPorts are the ports of host:port addresses, for a head that
// connects to its RPC workers.
func connectPorts(addrs []string) []uint16 {
	var ports []uint16
	for _, a := range addrs {
		if _, port, err := net.SplitHostPort(a); err == nil {
			if n, err := strconv.ParseUint(port, 10, 16); err == nil {
				ports = append(ports, uint16(n))
			}
		}
	}
	return ports
}
