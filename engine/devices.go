package engine

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/potluck-gpu/potluck/sandbox"
)

// Device is one compute device llama.cpp can use, as ggml names it: what
// `llama-server --list-devices` prints, plus the CPU, which it leaves out.
type Device struct {
	Name        string `json:"name"`        // ggml's name: "CUDA0", "Vulkan0", "Metal", "RPC0", "CPU"
	Backend     string `json:"backend"`     // "CUDA", "Vulkan", "Metal", "RPC", "CPU"
	Description string `json:"description"` // e.g. "NVIDIA GeForce RTX 4090", "llvmpipe (LLVM 15.0.6, 256 bits)"
	TotalBytes  uint64 `json:"total_bytes"`
	FreeBytes   uint64 `json:"free_bytes"`
}

// BackendProblem is a ggml backend that is installed but unusable, in
// llama.cpp's own words: typically the CUDA backend on a machine without
// the NVIDIA driver ("libcuda.so.1: cannot open shared object file").
type BackendProblem struct {
	Backend string `json:"backend"` // ggml's name: "CUDA", "Vulkan"
	Message string `json:"message"`
}

// Devices lists what llama-server can offload to on this machine, in
// ggml's order, then the CPU, which llama-server does not list (its memory
// is left 0: hw knows the RAM). env is extra environment for the child. A
// backend that does not load is one of the problems, not an error; err
// means llama-server could not run at all.
func (rt Runtime) Devices(ctx context.Context, env []string) ([]Device, []BackendProblem, error) {
	devs, problems, err := rt.listDevices(ctx, sandbox.Policy{}, env, nil)
	if err != nil {
		return nil, nil, err
	}
	return append(devs, Device{Name: "CPU", Backend: "CPU"}), problems, nil
}

// RPCDevices lists the devices RPC workers lend, as a head that connects to
// addrs sees them: RPC0, RPC1, … numbered across the workers in the order
// of addrs, and within a worker in the order of its --device list. Their
// Description is the worker's address; the worker's own device names are
// not passed on. A worker that does not answer is an error.
func (rt Runtime) RPCDevices(ctx context.Context, addrs, env []string) ([]Device, error) {
	p := sandbox.Policy{Connect: connectPorts(addrs)}
	devs, _, err := rt.listDevices(ctx, p, env, []string{"--rpc", strings.Join(addrs, ",")})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(devs, func(d Device) bool { return d.Backend != "RPC" }), nil
}

func (rt Runtime) listDevices(ctx context.Context, p sandbox.Policy, env, args []string) ([]Device, []BackendProblem, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// llama-server acts on --list-devices as it parses it, so the log level
	// and --rpc come first. At level 4 ggml says which backends it loaded.
	argv := slices.Concat([]string{"-lv", "4"}, args, []string{"--list-devices"})
	out, log, err := rt.Server.run(ctx, p, env, argv...)
	if err != nil {
		return nil, nil, fmt.Errorf("llama-server --list-devices: %w: %s", err, lastLines(log, 3))
	}
	if !strings.Contains(out, "Available devices:") {
		return nil, nil, fmt.Errorf("llama-server --list-devices: unexpected output: %s", lastLines(out+log, 3))
	}
	problems := ParseBackendProblems(log)
	// A release build of ggml skips a backend it cannot load without a
	// word. Loading that one alone through GGML_BACKEND_PATH makes it say why.
	dirs := []string{rt.Server.backendDir()}
	for _, m := range loadedLine.FindAllStringSubmatch(log, -1) {
		dirs = append(dirs, filepath.Dir(strings.TrimSpace(m[2])))
	}
	for _, lib := range unloadedBackends(dirs, LoadedBackends(log)) {
		name := backendName(lib)
		if slices.ContainsFunc(problems, func(p BackendProblem) bool { return p.Backend == name }) {
			continue
		}
		if msg, ok := rt.Server.whyNotLoaded(ctx, env, lib, name); !ok {
			problems = append(problems, BackendProblem{Backend: name, Message: msg})
		}
	}
	return ParseDevices(out), problems, nil
}

// whyNotLoaded loads one backend library alone and returns what llama.cpp
// says of it, or ok when it loads after all. llama.cpp logs from a thread
// of its own, and a process that exits at once can lose the last lines
// (seen under load, about one run in 40), so a run that says nothing either
// way is tried again.
func (b Binary) whyNotLoaded(ctx context.Context, env []string, lib, name string) (msg string, ok bool) {
	env = append(slices.Clone(env), "GGML_BACKEND_PATH="+lib)
	for range 3 {
		_, log, _ := b.run(ctx, sandbox.Policy{Read: []string{lib}}, env, "-lv", "4", "--list-devices")
		for _, q := range ParseBackendProblems(log) {
			if q.Backend == name {
				return q.Message, false
			}
		}
		if slices.ContainsFunc(LoadedBackends(log), func(l string) bool { return strings.EqualFold(l, name) }) {
			return "", true
		}
		if ctx.Err() != nil {
			break
		}
	}
	return "not loaded, and llama.cpp gave no reason", false
}

// run runs the binary to completion, with what p grants when it is
// confined and extra environment, and returns its standard output and
// error apart.
func (b Binary) run(ctx context.Context, p sandbox.Policy, env []string, args ...string) (stdout, stderr string, err error) {
	cmd := b.CommandIn(ctx, p, args...)
	cmd.Env = append(cmd.Env, env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = runToEnd(cmd)
	return o.String(), e.String(), err
}

// runToEnd runs cmd as Run does, contained as a child that lives longer
// would be.
func runToEnd(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		toContain.Delete(cmd)
		return err
	}
	_ = afterStart(cmd)
	defer release(cmd)
	return cmd.Wait()
}

// backendDir is where ggml looks for backends "next to the executable":
// for a binary run through its loader, the loader's directory, where
// Install links them.
func (b Binary) backendDir() string {
	if b.Loader != "" && len(b.LibraryPath) > 0 {
		return b.LibraryPath[0]
	}
	return filepath.Dir(b.Path)
}

// unloadedBackends returns the GPU and RPC backend libraries in dirs whose
// backend is not among loaded, one per backend.
func unloadedBackends(dirs, loaded []string) []string {
	var libs, names []string
	for _, dir := range dirs {
		for _, pat := range []string{"libggml-*.so", "ggml-*.dll"} {
			m, _ := filepath.Glob(filepath.Join(dir, pat))
			for _, lib := range m {
				name := backendName(lib)
				if name == "" || name == "CPU" || slices.Contains(names, name) ||
					slices.ContainsFunc(loaded, func(l string) bool { return strings.EqualFold(l, name) }) {
					continue
				}
				libs, names = append(libs, lib), append(names, name)
			}
		}
	}
	return libs
}

// backendNames are ggml's names for its backends, by the name their
// library file carries.
var backendNames = map[string]string{
	"cuda": "CUDA", "vulkan": "Vulkan", "metal": "Metal", "hip": "ROCm", "musa": "MUSA", "sycl": "SYCL",
	"opencl": "OpenCL", "cann": "CANN", "rpc": "RPC", "blas": "BLAS", "webgpu": "WebGPU", "zdnn": "zDNN",
}

// backendName returns ggml's backend name for a backend library path, "CPU"
// for the CPU variants, and "" for what is no backend (libggml-base).
func backendName(lib string) string {
	base := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(lib), ".so"), ".dll")
	base = strings.TrimPrefix(strings.TrimPrefix(base, "lib"), "ggml-")
	if base == "cpu" || strings.HasPrefix(base, "cpu-") {
		return "CPU"
	}
	return backendNames[base]
}

var (
	// "  Vulkan0: llvmpipe (LLVM 15.0.6, 256 bits) (2048 MiB, 2048 MiB free)"
	deviceLine = regexp.MustCompile(`^\s+([^\s:]+): (.*) \((\d+) MiB, (\d+) MiB free\)\s*$`)
	// "0.00.040.377 I load_backend: loaded Vulkan backend from /r/libggml-vulkan.so"
	loadedLine = regexp.MustCompile(`(?m)load_backend: loaded (\S+) backend from (.+)$`)
	// llama.cpp's log prefix: "0.00.053.406 E "
	logPrefix = regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+ ([A-Z]) `)
	// what names a backend in an error line: a library, a log tag
	backendMention = regexp.MustCompile(`ggml[-_](?:backend_)?(cuda|vulkan|metal|hip|musa|sycl|opencl|cann|rpc|blas|webgpu|zdnn)`)
	trailingDigits = regexp.MustCompile(`\d+$`)
)

// ParseDevices parses the device lines of `llama-server --list-devices`
// (or of the RPC worker's start banner, which has the same form). Memory is
// printed in MiB and returned in bytes.
func ParseDevices(out string) []Device {
	var devs []Device
	for _, line := range strings.Split(out, "\n") {
		m := deviceLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		total, _ := strconv.ParseUint(m[3], 10, 64)
		free, _ := strconv.ParseUint(m[4], 10, 64)
		devs = append(devs, Device{
			Name:        m[1],
			Backend:     deviceBackend(m[1]),
			Description: m[2],
			TotalBytes:  total << 20,
			FreeBytes:   free << 20,
		})
	}
	return devs
}

// deviceBackend derives the backend from a device name: "Vulkan0" is
// Vulkan's, "MTL0" Metal's.
func deviceBackend(name string) string {
	b := trailingDigits.ReplaceAllString(name, "")
	if b == "MTL" {
		return "Metal"
	}
	return b
}

// LoadedBackends returns the backends ggml says it loaded, in order, from a
// llama.cpp log at verbosity 4 or more.
func LoadedBackends(log string) []string {
	var names []string
	for _, m := range loadedLine.FindAllStringSubmatch(log, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	return names
}

// ParseBackendProblems picks from a llama.cpp log the errors that name a
// backend, one problem per backend with its lines joined. Lines without
// llama.cpp's prefix (the RPC worker logs plainly) count when they say
// something failed.
func ParseBackendProblems(log string) []BackendProblem {
	var problems []BackendProblem
	for _, line := range strings.Split(log, "\n") {
		line = strings.TrimSpace(line)
		if m := logPrefix.FindStringSubmatch(line); m != nil {
			if m[1] != "E" {
				continue
			}
			line = line[len(m[0]):]
		} else if !strings.Contains(strings.ToLower(line), "failed") {
			continue
		}
		b := backendMention.FindStringSubmatch(strings.ToLower(line))
		if b == nil {
			continue
		}
		name := backendNames[b[1]]
		if i := slices.IndexFunc(problems, func(p BackendProblem) bool { return p.Backend == name }); i >= 0 {
			problems[i].Message += "; " + line
			continue
		}
		problems = append(problems, BackendProblem{Backend: name, Message: line})
	}
	return problems
}
