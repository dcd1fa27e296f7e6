package engine

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestServerArgs(t *testing.T) {
	tests := []struct {
		name string
		spec ServerSpec
		want string
	}{
		{"minimal", ServerSpec{Model: "m.gguf", Port: 9000},
			"--model m.gguf --host 127.0.0.1 --port 9000 --no-webui"},
		{"tuned", ServerSpec{Model: "m.gguf", Alias: "tiny", Port: 9000, CtxSize: 512, Threads: 1, Parallel: 4},
			"--model m.gguf --host 127.0.0.1 --port 9000 --no-webui --alias tiny --ctx-size 512 --threads 1 --threads-batch 1 --parallel 4"},
		{"split", ServerSpec{Model: "m.gguf", Port: 9000, RPC: []string{"127.0.0.1:1", "127.0.0.1:2"}, GPULayers: -1, TensorSplit: []float64{1, 2.5, 0}},
			"--model m.gguf --host 127.0.0.1 --port 9000 --no-webui --rpc 127.0.0.1:1,127.0.0.1:2 --n-gpu-layers 999 --tensor-split 1,2.5,0"},
		{"devices after rpc", ServerSpec{Model: "m.gguf", Port: 9000, RPC: []string{"127.0.0.1:1"}, Devices: []string{"Vulkan0", "RPC0"}, GPULayers: -1},
			"--model m.gguf --host 127.0.0.1 --port 9000 --no-webui --rpc 127.0.0.1:1 --device Vulkan0,RPC0 --n-gpu-layers 999"},
		{"no offload", ServerSpec{Model: "m.gguf", Port: 9000, Devices: []string{"none"}},
			"--model m.gguf --host 127.0.0.1 --port 9000 --no-webui --device none"},
		{"embeddings from a chat model", ServerSpec{Model: "m.gguf", Port: 9000, Embeddings: true, Pooling: "mean"},
			"--model m.gguf --host 127.0.0.1 --port 9000 --no-webui --embeddings --pooling mean"},
		{"reranker", ServerSpec{Model: "m.gguf", Port: 9000, Rerank: true},
			"--model m.gguf --host 127.0.0.1 --port 9000 --no-webui --rerank"},
		{"draft on a GPU", ServerSpec{Model: "m.gguf", Port: 9000, Draft: DraftSpec{Model: "d.gguf", Devices: []string{"Vulkan0"}, GPULayers: -1, Max: 8, Min: 2}},
			"--model m.gguf --host 127.0.0.1 --port 9000 --no-webui --spec-type draft-simple --spec-draft-model d.gguf --spec-draft-device Vulkan0 --spec-draft-ngl all --spec-draft-n-max 8 --spec-draft-n-min 2"},
		{"draft on the CPU, llama.cpp's defaults", ServerSpec{Model: "m.gguf", Port: 9000, Draft: DraftSpec{Model: "d.gguf", Devices: []string{"none"}}},
			"--model m.gguf --host 127.0.0.1 --port 9000 --no-webui --spec-type draft-simple --spec-draft-model d.gguf --spec-draft-device none"},
		{"draft-free speculation", ServerSpec{Model: "m.gguf", Port: 9000, Speculate: "ngram-mod"},
			"--model m.gguf --host 127.0.0.1 --port 9000 --no-webui --spec-type ngram-mod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(ServerArgs(tt.spec), " "); got != tt.want {
				t.Errorf("ServerArgs:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestWorkerArgs(t *testing.T) {
	tests := []struct {
		name string
		spec WorkerSpec
		want string
	}{
		{"loopback", WorkerSpec{Port: 5000, Threads: 2, CacheDir: "/tmp/c"},
			"--host 127.0.0.1 --port 5000 --threads 2 --cache"},
		{"one device", WorkerSpec{Port: 5000, Devices: []string{"Vulkan0"}},
			"--host 127.0.0.1 --port 5000 --device Vulkan0"},
		{"devices in order", WorkerSpec{Port: 5000, Threads: 1, Devices: []string{"CUDA0", "Vulkan0", "CPU"}},
			"--host 127.0.0.1 --port 5000 --threads 1 --device CUDA0,Vulkan0,CPU"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(WorkerArgs(tt.spec), " "); got != tt.want {
				t.Errorf("WorkerArgs:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestBinaryArgvThroughLoader(t *testing.T) {
	b := Binary{Path: "/r/usr/bin/llama-server", Loader: "/r/ld.so", LibraryPath: []string{"/r/lib", "/r/lib/llama"}}
	prog, argv := b.Argv("--version")
	if prog != "/r/ld.so" || strings.Join(argv, " ") != "--library-path /r/lib:/r/lib/llama /r/usr/bin/llama-server --version" {
		t.Errorf("Argv = %s %q", prog, argv)
	}
	if prog, argv := (Binary{Path: "/usr/bin/llama-server"}).Argv("-h"); prog != "/usr/bin/llama-server" || len(argv) != 1 {
		t.Errorf("plain Argv = %s %q", prog, argv)
	}
}

func TestChildEnvDisablesBacktrace(t *testing.T) {
	env := childEnv([]string{"A=1", "GGML_NO_BACKTRACE=0"})
	if !slices.Equal(env, []string{"A=1", "GGML_NO_BACKTRACE=1"}) {
		t.Errorf("childEnv = %q", env)
	}
}

func TestLocatorOrder(t *testing.T) {
	mk := func(dir string, names ...string) string {
		for _, n := range names {
			p := filepath.Join(dir, n+exeSuffix)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	explicit := mk(t.TempDir(), "llama-server", "rpc-server")
	env := mk(t.TempDir(), "bin/llama-server", "bin/ggml-rpc-server")
	exe := t.TempDir()
	mk(filepath.Join(exe, "llama"), "llama-server")
	path := mk(t.TempDir(), "llama-server", "rpc-server")

	rt, err := Locator{Dir: explicit, EnvDir: env, ExeDir: exe, PathEnv: path}.Find()
	if err != nil || rt.Server.Source != "--llama-dir" || rt.Worker.Source != "--llama-dir" {
		t.Errorf("explicit first: %+v, %v", rt, err)
	}
	rt, err = Locator{EnvDir: env, ExeDir: exe, PathEnv: path}.Find()
	if err != nil || rt.Server.Source != "POTLUCK_LLAMA_DIR" || filepath.Base(rt.Worker.Path) != "ggml-rpc-server"+exeSuffix {
		t.Errorf("env dir: %+v, %v", rt, err)
	}
	// Next to the executable there is no worker: it comes from PATH.
	rt, err = Locator{ExeDir: exe, PathEnv: path}.Find()
	if err != nil || rt.Server.Source != "next to potluck" || rt.Worker.Source != "PATH" {
		t.Errorf("exe dir: %+v, %v", rt, err)
	}
	_, err = Locator{PathEnv: t.TempDir(), ProvisionDir: t.TempDir()}.Find()
	if err == nil || !strings.Contains(err.Error(), "potluck engine install") || !strings.Contains(err.Error(), "PATH") {
		t.Errorf("not found error should say where it looked and what to do: %v", err)
	}
}

func TestParseVersions(t *testing.T) {
	v, b, ok := ParseServerVersion("load_backend: loaded RPC backend\nversion: 0.7.0 (build 11669, commit Debian)\nbuilt with GNU 16.2.0 for Linux x86_64\n")
	if !ok || v != "0.7.0 (build 11669, commit Debian)" || b != "11669" {
		t.Errorf("ParseServerVersion = %q %q %v", v, b, ok)
	}
	// Its log thread began a line as --version printed.
	v, b, ok = ParseServerVersion("0.00.001.842 I version: 0.5.0 (build 1, commit de3ff81)\nbuilt with GNU 12.2.0 for Linux x86_64\nsrv  llama_server: initializing ...\n")
	if !ok || v != "0.5.0 (build 1, commit de3ff81)" || b != "1" {
		t.Errorf("ParseServerVersion of interleaved output = %q %q %v", v, b, ok)
	}
	if _, _, ok := ParseServerVersion("error: unknown argument"); ok {
		t.Error("garbage parsed as a version")
	}
	if p, ok := ParseRPCBanner("load_backend: x\nStarting RPC server v8.0.0\n  endpoint : 127.0.0.1:5"); !ok || p != "8.0.0" {
		t.Errorf("ParseRPCBanner = %q %v", p, ok)
	}
}

func TestDebianMirror(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	deb822 := write("debian.sources", `Types: deb
# a comment
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
`)
	oneLine := write("sources.list", "# nothing\ndeb [arch=amd64 signed-by=/k.gpg] http://other.example/debian trixie main\n")
	empty := write("empty.list", "")
	tests := []struct {
		files []string
		want  string
	}{
		{[]string{empty, deb822}, "http://mirror.example/debian"},
		{[]string{oneLine, deb822}, "http://other.example/debian"},
		{[]string{filepath.Join(dir, "missing.list"), oneLine}, "http://other.example/debian"},
	}
	for _, tt := range tests {
		got, err := DebianMirror(tt.files)
		if err != nil || got != tt.want {
			t.Errorf("DebianMirror(%v) = %q, %v; want %q", tt.files, got, err, tt.want)
		}
	}
	if _, err := DebianMirror([]string{empty}); err == nil {
		t.Error("no Debian source should be an error")
	}
}

func TestParsePrintURIs(t *testing.T) {
	out := `'http://m/pool/main/z/zlib/zlib1g_1.3_amd64.deb' zlib1g_1%3a1.3_amd64.deb 92424 SHA256:8506ce550a81ac14b047608e0df121037d9cbb10c3cc28446f68cf8c1d9d31ce
Reading package lists...
'http://m/pool/main/g/ggml/libggml0_0.27.0-1_amd64.deb' libggml0_0.27.0-1_amd64.deb 1671168 SHA256:f621153d6615a8dd1ac4b14e110cbafca34cc66f551367c5f6326f71fb141b0d
`
	got := ParsePrintURIs(out)
	if len(got) != 2 || got[0].File != "zlib1g_1%3a1.3_amd64.deb" || got[1].SHA256[:8] != "f621153d" {
		t.Errorf("ParsePrintURIs = %+v", got)
	}
}

// On a system whose apt sources name no Debian archive (Ubuntu here, from a
// fake os-release and sources in a temporary root), provisioning says what
// to do; a --mirror that is no URL is refused. Neither reaches a network.
func TestInstallElsewhereSaysWhatToDo(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("provisioning is for linux/amd64")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("no apt-get")
	}
	if _, err := os.Stat(debianKeyring); err != nil {
		t.Skip("no Debian keyring")
	}
	root := t.TempDir()
	osRelease := filepath.Join(root, "os-release")
	os.WriteFile(osRelease, []byte("NAME=\"Ubuntu\"\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nID=ubuntu\n"), 0o644)
	sources := filepath.Join(root, "ubuntu.sources")
	os.WriteFile(sources, []byte("Types: deb\nURIs: http://archive.example/ubuntu/\nSuites: noble noble-updates\nComponents: main universe\n"), 0o644)

	_, err := Install(context.Background(), InstallOptions{Dir: filepath.Join(root, "llama"), Sources: []string{sources}, OSRelease: osRelease})
	for _, want := range []string{"Ubuntu 24.04.1 LTS", "--mirror URL", "POTLUCK_DEBIAN_MIRROR", sources, "POTLUCK_LLAMA_DIR"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	if !errors.Is(err, ErrUnsupportedPlatform) {
		t.Errorf("error %v is not ErrUnsupportedPlatform", err)
	}
	_, err = Install(context.Background(), InstallOptions{Dir: filepath.Join(root, "llama"), Mirror: "archive/debian", OSRelease: osRelease})
	if err == nil || !strings.Contains(err.Error(), "--mirror") || !strings.Contains(err.Error(), "dists/") {
		t.Errorf("a mirror that is no URL: %v", err)
	}
}
