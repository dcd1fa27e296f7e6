package engine

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/potluck-gpu/potluck/sandbox"
)

// ServerSpec is what a llama-server child serves.
type ServerSpec struct {
	Model       string    // GGUF path
	Alias       string    // model id shown in /v1/models
	Port        int       // on 127.0.0.1
	CtxSize     int       // 0: the model's default
	Threads     int       // 0: llama.cpp's default
	GPULayers   int       // -1: all
	RPC         []string  // worker addresses, host:port
	Devices     []string  // devices to offload to, e.g. Vulkan0, RPC0; {"none"}: none; empty: llama.cpp's choice
	TensorSplit []float64 // proportions, one per device
	Parallel    int       // request slots; 0: llama.cpp's default
	Embeddings  bool      // serve /v1/embeddings (see PlanServing)
	Rerank      bool      // serve /v1/rerank
	Pooling     string    // mean, cls, last or rank; empty: the model's own
	// Draft, when its Model is set, drafts tokens for the model to check
	// several at a time (speculative decoding).
	Draft DraftSpec
	// Speculate names llama.cpp's draft-free speculation ("ngram-mod",
	// …) when no Draft model is set; empty: none.
	Speculate string
}

// DraftSpec is a draft model for speculative decoding: a small model of
// the served model's vocabulary that runs beside it on the head.
type DraftSpec struct {
	Model     string   // GGUF path; empty: no draft
	Devices   []string // where it runs, e.g. Vulkan0; {"none"}: the CPU; empty: llama.cpp's choice
	GPULayers int      // -1: all; 0: llama.cpp's choice
	Max       int      // most tokens drafted at a time; 0: llama.cpp's default (3)
	Min       int      // fewest tokens drafted at a time; 0: llama.cpp's default (0)
}

// args are llama-server's flags for the draft.
func (d DraftSpec) args() []string {
	if d.Model == "" {
		return nil
	}
	// The type is named: llama.cpp would otherwise guess it from the
	// file, and a plain model is the simple draft.
	args := []string{"--spec-type", "draft-simple", "--spec-draft-model", d.Model}
	if len(d.Devices) > 0 {
		args = append(args, "--spec-draft-device", strings.Join(d.Devices, ","))
	}
	switch {
	case d.GPULayers < 0:
		args = append(args, "--spec-draft-ngl", "all")
	case d.GPULayers > 0:
		args = append(args, "--spec-draft-ngl", strconv.Itoa(d.GPULayers))
	}
	if d.Max > 0 {
		args = append(args, "--spec-draft-n-max", strconv.Itoa(d.Max))
	}
	if d.Min > 0 {
		args = append(args, "--spec-draft-n-min", strconv.Itoa(d.Min))
	}
	return args
}

// ServerArgs derives llama-server's arguments. It always binds 127.0.0.1:
// the API in front of it is the only way in.
func ServerArgs(s ServerSpec) []string {
	args := []string{"--model", s.Model, "--host", "127.0.0.1", "--port", strconv.Itoa(s.Port), "--no-webui"}
	if s.Alias != "" {
		args = append(args, "--alias", s.Alias)
	}
	if s.CtxSize > 0 {
		args = append(args, "--ctx-size", strconv.Itoa(s.CtxSize))
	}
	if s.Threads > 0 {
		args = append(args, "--threads", strconv.Itoa(s.Threads), "--threads-batch", strconv.Itoa(s.Threads))
	}
	if s.Parallel > 0 {
		args = append(args, "--parallel", strconv.Itoa(s.Parallel))
	}
	if len(s.RPC) > 0 {
		args = append(args, "--rpc", strings.Join(s.RPC, ","))
	}
	if len(s.Devices) > 0 {
		// After --rpc: llama-server checks the names as it parses them,
		// and RPC0… exist only once --rpc has connected.
		args = append(args, "--device", strings.Join(s.Devices, ","))
	}
	if s.GPULayers != 0 {
		ngl := strconv.Itoa(s.GPULayers)
		if s.GPULayers < 0 {
			ngl = "999"
		}
		args = append(args, "--n-gpu-layers", ngl)
	}
	if len(s.TensorSplit) > 0 {
		parts := make([]string, len(s.TensorSplit))
		for i, f := range s.TensorSplit {
			parts[i] = strconv.FormatFloat(f, 'f', -1, 64)
		}
		args = append(args, "--tensor-split", strings.Join(parts, ","))
	}
	if s.Embeddings {
		args = append(args, "--embeddings")
	}
	if s.Rerank {
		args = append(args, "--rerank")
	}
	if s.Pooling != "" {
		args = append(args, "--pooling", s.Pooling)
	}
	if s.Draft.Model != "" {
		args = append(args, s.Draft.args()...)
	} else if s.Speculate != "" {
		args = append(args, "--spec-type", s.Speculate)
	}
	return args
}

// WorkerSpec is what an RPC worker child offers.
type WorkerSpec struct {
	Port     int    // on 127.0.0.1
	Threads  int    // 0: llama.cpp's default
	CacheDir string // tensor cache; empty: no cache
	// Devices are the devices the worker lends, in this order, e.g.
	// Vulkan0, CPU; a head numbers them RPC0, RPC1, … Empty: the worker's
	// GPUs, or its CPU when it has none.
	Devices []string
	// Memory is the most memory the worker may commit, where the sandbox
	// bounds it (Windows); 0: no bound.
	Memory uint64
}

// WorkerArgs derives the RPC worker's arguments. It always binds 127.0.0.1:
// llama.cpp's RPC protocol has no authentication and must never face a
// network; peers reach it only through the mesh tunnel.
func WorkerArgs(w WorkerSpec) []string {
	args := []string{"--host", "127.0.0.1", "--port", strconv.Itoa(w.Port)}
	if w.Threads > 0 {
		args = append(args, "--threads", strconv.Itoa(w.Threads))
	}
	if w.CacheDir != "" {
		args = append(args, "--cache")
	}
	if len(w.Devices) > 0 {
		args = append(args, "--device", strings.Join(w.Devices, ","))
	}
	return args
}

// ServerSupervisorSpec returns a supervisor spec that runs llama-server for s.
func (rt Runtime) ServerSupervisorSpec(s ServerSpec) Spec {
	base := fmt.Sprintf("http://127.0.0.1:%d", s.Port)
	return Spec{
		Name: "llama-server",
		Command: func(ctx context.Context) (*exec.Cmd, error) {
			read := modelFiles(s.Model)
			if s.Draft.Model != "" {
				read = append(read, modelFiles(s.Draft.Model)...)
			}
			p := sandbox.Policy{Read: read, Bind: []uint16{uint16(s.Port)}, Connect: connectPorts(s.RPC)}
			return rt.Server.CommandIn(ctx, p, ServerArgs(s)...), nil
		},
		Ready: func(ctx context.Context) error { return HealthCheck(ctx, base) },
	}
}

// WorkerSupervisorSpec returns a supervisor spec that runs the RPC worker.
// The worker keeps its tensor cache under w.CacheDir, in RPCCacheDir.
func (rt Runtime) WorkerSupervisorSpec(w WorkerSpec) Spec {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(w.Port))
	return Spec{
		Name: "rpc-server",
		Command: func(ctx context.Context) (*exec.Cmd, error) {
			if rt.Worker.Path == "" {
				return nil, fmt.Errorf("%w: no RPC worker (rpc-server) in the llama.cpp runtime", ErrNotFound)
			}
			p := sandbox.Policy{Bind: []uint16{uint16(w.Port)}, Memory: w.Memory}
			if w.CacheDir != "" {
				p.Write = []string{w.CacheDir}
			}
			cmd := rt.Worker.CommandIn(ctx, p, WorkerArgs(w)...)
			if w.CacheDir != "" {
				// LLAMA_CACHE on every OS (XDG_CACHE_HOME is read only on
				// Linux; Windows and macOS would use their own cache
				// folders); XDG_CACHE_HOME for builds that predate it.
				cmd.Env = append(cmd.Env, "LLAMA_CACHE="+filepath.Join(w.CacheDir, "llama.cpp"), "XDG_CACHE_HOME="+w.CacheDir)
			}
			return cmd, nil
		},
		Ready: func(ctx context.Context) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			return c.Close()
		},
	}
}

// HealthCheck asks a llama-server for /health; 200 means the model is loaded.
func HealthCheck(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("llama-server /health: %s", resp.Status)
	}
	return nil
}
