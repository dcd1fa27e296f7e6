package engine

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Output of llama.cpp 0.7.0 (Debian sid, ggml 0.27.0), captured.
const (
	listNone = "Available devices:\n  (none)\n"

	// GGML_VK_VISIBLE_DEVICES=0 and Debian 12's lavapipe.
	listLavapipe = "Available devices:\n  Vulkan0: llvmpipe (LLVM 15.0.6, 256 bits) (2048 MiB, 2048 MiB free)\n"

	// The same head with `--rpc 127.0.0.1:50101,127.0.0.1:50102`: workers
	// started with `-d Vulkan0,CPU` and `-d CPU,Vulkan0`. Local devices come
	// first, then each worker's in --rpc order and in its -d order; an RPC
	// device's description is its worker's address.
	listRPC = `Available devices:
  Vulkan0: llvmpipe (LLVM 15.0.6, 256 bits) (2048 MiB, 2048 MiB free)
  RPC0: 127.0.0.1:50101 (2048 MiB, 2048 MiB free)
  RPC1: 127.0.0.1:50101 (24105 MiB, 24105 MiB free)
  RPC2: 127.0.0.1:50102 (24105 MiB, 24105 MiB free)
  RPC3: 127.0.0.1:50102 (2048 MiB, 2048 MiB free)
`

	// ggml-rpc-server -p 50101 -d Vulkan0,CPU, start banner.
	workerBanner = `load_backend: loaded RPC backend from /p/root/usr/lib/x86_64-linux-gnu/libggml-rpc.so
ggml_vulkan: Found 1 Vulkan devices:
ggml_vulkan: 0 = llvmpipe (LLVM 15.0.6, 256 bits) (llvmpipe) | uma: 0 | fp16: 1 | bf16: 0 | fp4: 0 | warp size: 8 | shared memory: 32768 | int dot: 0 | matrix cores: none
ggml_vulkan: Warning: Device type is CPU. This is probably not the device you want.
load_backend: loaded Vulkan backend from /p/root/usr/lib/x86_64-linux-gnu/libggml-vulkan.so
load_backend: loaded CPU backend from /p/root/usr/lib/x86_64-linux-gnu/libggml-cpu-haswell.so
Starting RPC server v8.0.0
  endpoint       : 127.0.0.1:50101
  local cache    : n/a
Devices:
  Vulkan0: llvmpipe (LLVM 15.0.6, 256 bits) (2048 MiB, 2048 MiB free)
  CPU: AMD EPYC (24105 MiB, 24105 MiB free)
  transport      : TCP
`

	// stderr of `llama-server -lv 4 --list-devices` with the CUDA backend
	// provisioned and no NVIDIA driver: ggml skips it without a word.
	logCUDASilent = `0.00.004.041 I load_backend: loaded RPC backend from /p/root/usr/lib/x86_64-linux-gnu/libggml-rpc.so
0.00.043.176 I ggml_vulkan: No devices found.
0.00.043.191 I load_backend: loaded Vulkan backend from /p/root/usr/lib/x86_64-linux-gnu/libggml-vulkan.so
0.00.050.563 I load_backend: loaded CPU backend from /p/root/usr/lib/x86_64-linux-gnu/libggml-cpu-haswell.so
`

	// stderr of the same with GGML_BACKEND_PATH=…/libggml-cuda.so.
	logCUDAFailed = "0.00.061.333 E load_backend: failed to load /p/root/usr/lib/x86_64-linux-gnu/ggml/backends0/libggml-cuda.so: libcuda.so.1: cannot open shared object file: No such file or directory\n"
)

func TestParseDevices(t *testing.T) {
	const mib = 1 << 20
	lvp := Device{Name: "Vulkan0", Backend: "Vulkan", Description: "llvmpipe (LLVM 15.0.6, 256 bits)", TotalBytes: 2048 * mib, FreeBytes: 2048 * mib}
	rpc := func(n, addr string, total uint64) Device {
		return Device{Name: n, Backend: "RPC", Description: addr, TotalBytes: total * mib, FreeBytes: total * mib}
	}
	tests := []struct {
		name, out string
		want      []Device
	}{
		{"none", listNone, nil},
		{"lavapipe", listLavapipe, []Device{lvp}},
		{"rpc workers", listRPC, []Device{lvp,
			rpc("RPC0", "127.0.0.1:50101", 2048), rpc("RPC1", "127.0.0.1:50101", 24105),
			rpc("RPC2", "127.0.0.1:50102", 24105), rpc("RPC3", "127.0.0.1:50102", 2048)}},
		{"worker banner", workerBanner, []Device{lvp,
			{Name: "CPU", Backend: "CPU", Description: "AMD EPYC", TotalBytes: 24105 * mib, FreeBytes: 24105 * mib}}},
		// Upstream's format for CUDA and Metal devices (not captured here).
		{"cuda and metal", "Available devices:\n  CUDA0: NVIDIA GeForce RTX 4090 (24080 MiB, 23664 MiB free)\n  MTL0: Apple M2 Max (49152 MiB, 49151 MiB free)\n",
			[]Device{
				{Name: "CUDA0", Backend: "CUDA", Description: "NVIDIA GeForce RTX 4090", TotalBytes: 24080 * mib, FreeBytes: 23664 * mib},
				{Name: "MTL0", Backend: "Metal", Description: "Apple M2 Max", TotalBytes: 49152 * mib, FreeBytes: 49151 * mib},
			}},
		{"garbage", "error: invalid argument: --list-devicez\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseDevices(tt.out); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseDevices:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestLoadedBackends(t *testing.T) {
	if got, want := LoadedBackends(logCUDASilent), []string{"RPC", "Vulkan", "CPU"}; !slices.Equal(got, want) {
		t.Errorf("LoadedBackends = %q, want %q", got, want)
	}
	if got := LoadedBackends(listNone); got != nil {
		t.Errorf("LoadedBackends(no log) = %q", got)
	}
}

func TestParseBackendProblems(t *testing.T) {
	tests := []struct {
		name, log string
		want      []BackendProblem
	}{
		{"silent skip", logCUDASilent, nil},
		{"cuda without driver", logCUDAFailed, []BackendProblem{{"CUDA",
			"load_backend: failed to load /p/root/usr/lib/x86_64-linux-gnu/ggml/backends0/libggml-cuda.so: libcuda.so.1: cannot open shared object file: No such file or directory"}}},
		{"warnings are no problem", workerBanner, nil},
		{"two lines, one backend", "0.01.000.000 E ggml_cuda_init: failed to initialize CUDA: forward compatibility was attempted on non supported HW\n" +
			"0.01.000.001 E ggml_backend_cuda_reg: no devices\n0.01.000.002 E something unrelated failed\n",
			[]BackendProblem{{"CUDA", "ggml_cuda_init: failed to initialize CUDA: forward compatibility was attempted on non supported HW; ggml_backend_cuda_reg: no devices"}}},
		{"unprefixed worker log", "ggml_backend_load_best: failed to enumerate /usr/lib/x86_64-linux-gnu/ggml/backends0: No such file or directory\n" +
			"load_backend: failed to load /r/libggml-vulkan.so: libvulkan.so.1: cannot open shared object file\n",
			[]BackendProblem{{"Vulkan", "load_backend: failed to load /r/libggml-vulkan.so: libvulkan.so.1: cannot open shared object file"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseBackendProblems(tt.log); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseBackendProblems:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestBackendName(t *testing.T) {
	for lib, want := range map[string]string{
		"/r/libggml-cuda.so":          "CUDA",
		"/r/libggml-vulkan.so":        "Vulkan",
		"/r/libggml-rpc.so":           "RPC",
		"/r/libggml-cpu-haswell.so":   "CPU",
		"/llama/ggml-cuda.dll":        "CUDA",
		"/r/libggml-base.so":          "",
		"/r/libggml-something-new.so": "",
	} {
		if got := backendName(lib); got != want {
			t.Errorf("backendName(%s) = %q, want %q", lib, got, want)
		}
	}
}

func TestResolveBackends(t *testing.T) {
	tests := []struct {
		choice []string
		want   []string
	}{
		{nil, []string{"vulkan"}},
		{[]string{"cpu"}, nil},
		{[]string{"vulkan"}, []string{"vulkan"}},
		{[]string{"cuda"}, []string{"cuda", "vulkan"}},
		{[]string{"cuda", "vulkan", "cuda"}, []string{"cuda", "vulkan"}},
	}
	for _, tt := range tests {
		got, err := ResolveBackends(tt.choice)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ResolveBackends(%q) = %q, %v; want %q", tt.choice, got, err, tt.want)
		}
	}
	if _, err := ResolveBackends([]string{"metal"}); err == nil {
		t.Error("an unknown backend should be an error")
	}
}

// Only CUDA needs contrib and non-free; the sources line names them only then.
func TestPackageSetComponents(t *testing.T) {
	for _, tt := range []struct {
		backends []string
		comps    string
		has, not []string
	}{
		{nil, "main", nil, []string{"libggml0-backend-vulkan", "libggml0-backend-cuda"}},
		{[]string{"vulkan"}, "main", []string{"libggml0-backend-vulkan", "libvulkan1"}, []string{"libggml0-backend-cuda"}},
		{[]string{"cuda", "vulkan"}, "main contrib non-free", []string{"libggml0-backend-cuda", "libcudart12", "libcublas12", "libcublaslt12", "libggml0-backend-vulkan"}, []string{"libcuda1", "libnvidia-ml1"}},
	} {
		pkgs, comps := packageSet(tt.backends)
		line := aptDirs{mirror: "http://m/debian", components: comps}.sourcesLine()
		if want := "deb [signed-by=" + debianKeyring + "] http://m/debian sid " + tt.comps + "\n"; line != want {
			t.Errorf("%q: sources line %q, want %q", tt.backends, line, want)
		}
		for _, p := range tt.has {
			if !slices.Contains(pkgs, p) {
				t.Errorf("%q: packages lack %s", tt.backends, p)
			}
		}
		for _, p := range tt.not {
			if slices.Contains(pkgs, p) {
				t.Errorf("%q: packages must not include %s: %s", tt.backends, p, strings.Join(pkgs, " "))
			}
		}
	}
}

func TestUnloadedBackends(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	for _, f := range []string{"libggml-base.so", "libggml-cpu-x64.so", "libggml-rpc.so", "libggml-vulkan.so", "libggml-cuda.so", "libggml.so.0"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(other, "libggml-cuda.so"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got := unloadedBackends([]string{dir, other}, []string{"RPC", "Vulkan", "CPU"})
	if want := []string{filepath.Join(dir, "libggml-cuda.so")}; !slices.Equal(got, want) {
		t.Errorf("unloadedBackends = %q, want %q", got, want)
	}
	if got := unloadedBackends([]string{dir}, []string{"RPC", "Vulkan", "CPU", "CUDA"}); got != nil {
		t.Errorf("all loaded: %q", got)
	}
}
