package enginetest

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/engine"
)

// icdDirs are where Vulkan drivers announce themselves.
var icdDirs = []string{"/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d"}

// Lavapipe returns the environment that makes a llama.cpp child see Mesa's
// software Vulkan driver (lavapipe, Debian's mesa-vulkan-drivers) as its
// only Vulkan device, Vulkan0, so GPU paths run on a machine without a GPU.
// It skips the test when the driver is not installed.
//
// ggml skips Vulkan devices of the CPU type unless GGML_VK_VISIBLE_DEVICES
// names them: that is for tests only, never for a node. The host's driver
// works inside the provisioned sid runtime: its own libraries (LLVM, libdrm)
// come from the system's directories, which the runtime's loader searches
// after its own.
func Lavapipe(t testing.TB) []string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("lavapipe: Linux only")
	}
	var icd string
	for _, dir := range icdDirs {
		// Debian 12 names it lvp_icd.x86_64.json, later Mesa lvp_icd.json.
		if m, _ := filepath.Glob(filepath.Join(dir, "lvp_icd*.json")); len(m) > 0 {
			icd = m[0]
			break
		}
	}
	if icd == "" {
		t.Skip("lavapipe (software Vulkan) is not installed: apt-get install mesa-vulkan-drivers (make deps does)")
	}
	return []string{
		"VK_DRIVER_FILES=" + icd,
		"VK_ICD_FILENAMES=" + icd, // the name Vulkan loaders before 1.3.207 read
		"GGML_VK_VISIBLE_DEVICES=0",
		// One cache for every test: compiling lavapipe's shaders takes
		// 15 s, reading them from the cache under a second.
		"MESA_SHADER_CACHE_DIR=" + filepath.Join(os.TempDir(), "potluck-test-mesa-shaders"),
	}
}

// VulkanRuntime is Runtime for tests of the Vulkan backend: it skips the
// test when this llama.cpp has no Vulkan backend beside it (a runtime
// provisioned before GPU backends were; `potluck engine install` adds it).
func VulkanRuntime(t testing.TB) engine.Runtime {
	t.Helper()
	rt := Runtime(t)
	dir := filepath.Dir(rt.Server.Path)
	if rt.Server.Loader != "" && len(rt.Server.LibraryPath) > 0 {
		dir = rt.Server.LibraryPath[0]
	}
	if _, err := os.Stat(filepath.Join(dir, "libggml-vulkan.so")); err != nil {
		t.Skipf("llama.cpp in %s has no Vulkan backend (run `potluck engine install`)", dir)
	}
	return rt
}

// LogVerbose is the environment that makes llama-server log where each
// layer and buffer goes (verbosity 4).
const LogVerbose = "LLAMA_ARG_LOG_VERBOSITY=4"

var offloaded = regexp.MustCompile(`offloaded (\d+)/(\d+) layers to GPU`)

// RequireOffloaded checks a llama-server log at LogVerbose for every layer
// offloaded, and every model buffer on dev but the CPU's mapped copy.
func RequireOffloaded(t testing.TB, logFile, dev string) {
	t.Helper()
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	log := string(data)
	m := offloaded.FindStringSubmatch(log)
	if m == nil || m[1] != m[2] {
		t.Fatalf("not every layer was offloaded (%q); log:\n%s", m, log)
	}
	if !strings.Contains(log, "using device "+dev+" ") {
		t.Errorf("log does not say llama.cpp uses %s", dev)
	}
	buffers := regexp.MustCompile(`load_tensors:\s+(\S+) model buffer size`).FindAllStringSubmatch(log, -1)
	for _, b := range buffers {
		if name := strings.SplitN(b[1], "[", 2)[0]; name != dev && name != "CPU_Mapped" {
			t.Errorf("weights on %s, want all on %s", b[1], dev)
		}
	}
	if !slices.ContainsFunc(buffers, func(b []string) bool { return strings.HasPrefix(b[1], dev) }) {
		t.Errorf("no model buffer on %s: %q", dev, buffers)
	}
	t.Logf("%s on %s", m[0], dev)
}
