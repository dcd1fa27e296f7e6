// Package engine owns llama.cpp on this machine: it finds or provisions the
// llama-server and RPC worker binaries, derives their command lines, and
// supervises them as child processes. It knows nothing of the mesh or of HTTP
// routing; callers hand it a model path and addresses.
package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/potluck-gpu/potluck/sandbox"
)

// Binary is one llama.cpp executable and how to start it. Binaries from the
// provisioned runtime run through their own dynamic loader, so Loader and
// LibraryPath are set; binaries found elsewhere run directly.
type Binary struct {
	Path        string   `json:"path"`
	Loader      string   `json:"loader,omitempty"`
	LibraryPath []string `json:"library_path,omitempty"`
	Source      string   `json:"source"` // where it was found, e.g. "PATH"
	// Confine, when set, starts the binary in the sandbox.
	Confine *Confinement `json:"-"`
}

// Argv returns the program to execute and its full argument list for args.
func (b Binary) Argv(args ...string) (string, []string) {
	if b.Loader == "" {
		return b.Path, args
	}
	// ld.so's list is colon-separated: the loader is Linux's.
	argv := []string{"--library-path", strings.Join(b.LibraryPath, ":"), b.Path}
	return b.Loader, append(argv, args...)
}

// Command builds an exec.Cmd for args without starting it: in the sandbox
// when the binary is confined, with what any child needs.
func (b Binary) Command(ctx context.Context, args ...string) *exec.Cmd {
	return b.CommandIn(ctx, sandbox.Policy{}, args...)
}

// childEnv is the environment every llama.cpp child gets: the parent's, with
// backtraces on abort turned off (they print a gdb session instead of dying).
func childEnv(parent []string) []string {
	env := make([]string, 0, len(parent)+1)
	for _, kv := range parent {
		if strings.HasPrefix(kv, "GGML_NO_BACKTRACE=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GGML_NO_BACKTRACE=1")
}

// Runtime is a usable pair of llama.cpp binaries.
type Runtime struct {
	Server Binary `json:"server"`
	Worker Binary `json:"worker"`
}

// Names under which the binaries are installed. Debian renames the upstream
// rpc-server to ggml-rpc-server.
var (
	serverNames = []string{"llama-server"}
	workerNames = []string{"rpc-server", "ggml-rpc-server", "llama-rpc-server"}
)

// Locator says where to look for llama.cpp. Main fills it from flags and
// environment; the zero value searches only PATH.
type Locator struct {
	Dir          string // explicit setting (--llama-dir)
	EnvDir       string // POTLUCK_LLAMA_DIR
	ExeDir       string // directory of the running potluck executable
	PathEnv      string // the PATH to search
	ProvisionDir string // where provisioned runtimes live, for messages
	// Provisioned returns the runtime Potluck provisioned for the llama.cpp
	// version it runs, searched last; nil: none.
	Provisioned func() (Runtime, bool)
}

// ErrNotFound reports that no llama.cpp runtime was found. The wrapping error
// lists the places searched.
var ErrNotFound = errors.New("llama.cpp not found")

// Find looks for llama-server and the RPC worker in order: the explicit
// setting, POTLUCK_LLAMA_DIR, a llama/ directory next to the executable,
// PATH, then the provisioned runtime. Both binaries come from the first place
// that has llama-server; the worker may be missing there, in which case the
// later places are searched for it.
func (l Locator) Find() (Runtime, error) {
	var looked []string
	var rt Runtime
	for _, place := range l.places() {
		looked = append(looked, place.label)
		if rt.Server.Path == "" {
			if b, ok := place.find(serverNames); ok {
				rt.Server = b
			}
		}
		if rt.Worker.Path == "" {
			if b, ok := place.find(workerNames); ok {
				rt.Worker = b
			}
		}
		if rt.Server.Path != "" && rt.Worker.Path != "" {
			return rt, nil
		}
	}
	if rt.Server.Path != "" {
		// A server without a worker is usable for single-machine serving.
		return rt, nil
	}
	return rt, fmt.Errorf("%w: looked in %s; run `potluck engine install`, or put llama-server on PATH, or set POTLUCK_LLAMA_DIR", ErrNotFound, strings.Join(looked, ", "))
}

type place struct {
	label string
	find  func(names []string) (Binary, bool)
}

func (l Locator) places() []place {
	var ps []place
	dirPlace := func(label, dir string) place {
		return place{label: fmt.Sprintf("%s (%s)", label, dir), find: func(names []string) (Binary, bool) {
			for _, d := range []string{dir, filepath.Join(dir, "bin")} {
				for _, n := range names {
					if p := filepath.Join(d, n+exeSuffix); isExecutable(p) {
						return Binary{Path: p, Source: label}, true
					}
				}
			}
			return Binary{}, false
		}}
	}
	if l.Dir != "" {
		ps = append(ps, dirPlace("--llama-dir", l.Dir))
	}
	if l.EnvDir != "" {
		ps = append(ps, dirPlace("POTLUCK_LLAMA_DIR", l.EnvDir))
	}
	if l.ExeDir != "" {
		ps = append(ps, dirPlace("next to potluck", filepath.Join(l.ExeDir, "llama")))
	}
	ps = append(ps, place{label: "PATH", find: func(names []string) (Binary, bool) {
		for _, d := range filepath.SplitList(l.PathEnv) {
			if d == "" {
				continue
			}
			for _, n := range names {
				if p := filepath.Join(d, n+exeSuffix); isExecutable(p) {
					return Binary{Path: p, Source: "PATH"}, true
				}
			}
		}
		return Binary{}, false
	}})
	if l.Provisioned != nil {
		label := "provisioned runtime"
		if l.ProvisionDir != "" {
			label += " (" + l.ProvisionDir + ")"
		}
		ps = append(ps, place{label: label, find: func(names []string) (Binary, bool) {
			rt, ok := l.Provisioned()
			if !ok {
				return Binary{}, false
			}
			if slices.Equal(names, serverNames) && rt.Server.Path != "" {
				return rt.Server, true
			}
			if slices.Equal(names, workerNames) && rt.Worker.Path != "" {
				return rt.Worker, true
			}
			return Binary{}, false
		}})
	}
	return ps
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	if err != nil || fi.IsDir() {
		return false
	}
	return exeSuffix != "" || fi.Mode()&0o111 != 0
}

// Versions describes a runtime for `potluck engine status` and NodeInfo.
type Versions struct {
	Server      string `json:"server"`       // e.g. "0.7.0 (build 11669, commit Debian)"
	Release     string `json:"release"`      // the release of Server, e.g. "0.7.0"; "" when it names none
	Build       string `json:"build"`        // e.g. "11669"
	RPCProtocol string `json:"rpc_protocol"` // e.g. "8.0.0"; empty without a worker
}

var (
	// The version line may follow the prefix of a log line that another
	// thread of llama-server began writing at the same moment
	// ("0.00.001.842 I version: …").
	versionLine = regexp.MustCompile(`(?m)^(?:[0-9.]+ [A-Z] )?version:\s*(.+)$`)
	buildNumber = regexp.MustCompile(`build (\d+)`)
	rpcBanner   = regexp.MustCompile(`RPC server v(\d+\.\d+\.\d+)`)
)

// ParseServerVersion extracts the version from `llama-server --version` output.
func ParseServerVersion(out string) (version, build string, ok bool) {
	m := versionLine.FindStringSubmatch(out)
	if m == nil {
		return "", "", false
	}
	version = strings.TrimSpace(m[1])
	if b := buildNumber.FindStringSubmatch(version); b != nil {
		build = b[1]
	}
	return version, build, true
}

var releaseRE = regexp.MustCompile(`^v?([0-9]+\.[0-9]+\.[0-9]+|b[0-9]+)$`)

// ReleaseOf is the release in a llama-server version, "0.7.0" of "0.7.0
// (build 11669, commit Debian)"; "" when it names none.
func ReleaseOf(server string) string {
	first, _, _ := strings.Cut(strings.TrimSpace(server), " ")
	if m := releaseRE.FindStringSubmatch(first); m != nil {
		return m[1]
	}
	return ""
}

// ParseRPCBanner extracts the protocol version from the RPC worker's start banner.
func ParseRPCBanner(out string) (string, bool) {
	m := rpcBanner.FindStringSubmatch(out)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// Probe runs the binaries briefly to learn their versions. The worker does
// not print its protocol version anywhere but its start banner, so it is
// started on a free loopback port and stopped as soon as the banner appears.
func (rt Runtime) Probe(ctx context.Context) (Versions, error) {
	var v Versions
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := rt.Server.Command(ctx, "--version")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := runToEnd(cmd)
	ver, build, ok := ParseServerVersion(out.String())
	if !ok {
		return v, fmt.Errorf("llama-server --version: unexpected output (%v): %s", err, lastLines(out.String(), 3))
	}
	v.Server, v.Build, v.Release = ver, build, ReleaseOf(ver)
	if rt.Worker.Path == "" {
		return v, nil
	}
	proto, err := probeWorker(ctx, rt.Worker)
	if err != nil {
		return v, err
	}
	v.RPCProtocol = proto
	return v, nil
}

func probeWorker(ctx context.Context, b Binary) (string, error) {
	port, err := FreePort()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := b.CommandIn(ctx, sandbox.Policy{Bind: []uint16{uint16(port)}}, WorkerArgs(WorkerSpec{Port: port, Threads: 1})...)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	configureProcess(cmd, time.Second)
	if err := cmd.Start(); err != nil {
		toContain.Delete(cmd)
		return "", fmt.Errorf("start RPC worker: %w", err)
	}
	_ = afterStart(cmd)
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		release(cmd)
		done <- err
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	knocked := false
	for {
		if !knocked {
			// The banner goes through printf, which a pipe buffers until
			// the worker flushes: it does on accepting a connection.
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond); err == nil {
				c.Close()
				knocked = true
			}
		}
		if proto, ok := ParseRPCBanner(out.String()); ok {
			cancel()
			<-done
			return proto, nil
		}
		select {
		case err := <-done:
			if proto, ok := ParseRPCBanner(out.String()); ok {
				return proto, nil
			}
			return "", fmt.Errorf("RPC worker exited before printing its version (%v): %s", err, lastLines(out.String(), 3))
		case <-ctx.Done():
			<-done
			return "", fmt.Errorf("RPC worker printed no version: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// DefaultProvisionDir is where `potluck engine install` puts llama.cpp when
// no other directory is given: the user's cache directory.
func DefaultProvisionDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "potluck", "llama")
}
