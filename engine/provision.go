package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// The provisioned runtime is Debian sid's llama.cpp, unpacked (not installed)
// under the provision directory and started through sid's own dynamic loader,
// so it runs on older Debian and Ubuntu releases without root.
const (
	provisionSuite   = "sid"
	debianKeyring    = "/usr/share/keyrings/debian-archive-keyring.gpg"
	multiarchLibDir  = "usr/lib/x86_64-linux-gnu"
	provisionLoader  = "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
	provisionLibexec = "usr/libexec/x86_64-linux-gnu/llama/bin"
)

// provisionPackages are the Debian packages that make a working runtime.
// libggml0-backend-rpc is what makes `--rpc` and the worker work at all.
var provisionPackages = []string{
	"libc6", "libgcc-s1", "libstdc++6", "libgomp1", "libssl3t64", "libzstd1", "zlib1g",
	"libggml0", "libggml0-backend-rpc", "libllama0", "llama.cpp-tools", "llama.cpp-tools-extra",
}

// The GPU backends Install can add to the CPU runtime, as InstallOptions
// and `potluck engine install --backend` name them (a Device's Backend uses
// ggml's names: "Vulkan", "CUDA"). ggml loads each one it finds at start; one
// whose driver is missing is skipped, not fatal.
const (
	ProvisionCPU    = "cpu"    // no GPU backend at all
	ProvisionVulkan = "vulkan" // AMD, Intel and NVIDIA GPUs through the system's Vulkan driver
	ProvisionCUDA   = "cuda"   // NVIDIA GPUs through the system's driver, 550 or later
)

// backendPackages are the packages each GPU backend adds, and the archive
// components they live in. The Vulkan loader comes along (the drivers, its
// ICDs, are the system's); libcuda.so.1 never does: it belongs to the
// installed NVIDIA driver, which must match the kernel module, and sid's
// CUDA 12.4 runtime needs driver 550 or later.
var backendPackages = map[string]struct {
	packages   []string
	components []string
}{
	ProvisionVulkan: {[]string{"libggml0-backend-vulkan", "libvulkan1"}, nil},
	ProvisionCUDA:   {[]string{"libggml0-backend-cuda", "libcudart12", "libcublas12", "libcublaslt12"}, []string{"contrib", "non-free"}},
}

// CUDADriverHint says what a CUDA backend needs from the machine.
const CUDADriverHint = "llama.cpp's CUDA backend needs the NVIDIA driver 550 or later (CUDA 12.4), installed from your distribution or NVIDIA"

// ResolveBackends turns a choice of GPU backends into the set Install
// provisions, sorted: Vulkan always (it is small, and a machine without a
// Vulkan driver just lists no Vulkan device), CUDA when asked for, and no
// GPU backend at all when the choice is only "cpu".
func ResolveBackends(choice []string) ([]string, error) {
	if len(choice) == 1 && choice[0] == ProvisionCPU {
		return nil, nil
	}
	out := []string{ProvisionVulkan}
	for _, b := range choice {
		if _, ok := backendPackages[b]; !ok {
			return nil, fmt.Errorf("unknown llama.cpp backend %q: want %s, %s or %s", b, ProvisionCPU, ProvisionVulkan, ProvisionCUDA)
		}
		if !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	slices.Sort(out)
	return out, nil
}

// packageSet returns the packages and archive components for backends.
func packageSet(backends []string) (pkgs, components []string) {
	pkgs = slices.Clone(provisionPackages)
	components = []string{"main"}
	for _, b := range backends {
		bp := backendPackages[b]
		pkgs = append(pkgs, bp.packages...)
		for _, c := range bp.components {
			if !slices.Contains(components, c) {
				components = append(components, c)
			}
		}
	}
	return pkgs, components
}

// ErrUnsupportedPlatform reports that Install cannot provision this system.
var ErrUnsupportedPlatform = errors.New("automatic llama.cpp install is not supported here")

// InstallOptions configure Install.
type InstallOptions struct {
	Dir string // provision directory
	// Backends are the GPU backends to add: "vulkan", "cuda", or only "cpu"
	// for none. Vulkan is always added unless the choice is "cpu"; see
	// ResolveBackends. Asking for other backends than the tree has unpacks
	// it again.
	Backends []string
	Sources  []string // apt source files to read the mirror from; defaults to the system's
	// Mirror is a Debian archive to provision from (--mirror,
	// POTLUCK_DEBIAN_MIRROR); empty: the one the apt sources name.
	Mirror string
	// OSRelease is the os-release file that names the system in
	// messages; empty: /etc/os-release.
	OSRelease string
	// Version, if set, is the llama.cpp version wanted ("0.7.0"): when sid
	// carries another, Install stops before downloading anything, with a
	// *DebianVersionError.
	Version  string
	Progress func(format string, a ...any) // optional progress lines for a person
}

// DebianVersionError says that Debian's sid carries another llama.cpp
// version than the one asked for.
type DebianVersionError struct{ Want, Have string }

func (e *DebianVersionError) Error() string {
	return fmt.Sprintf("Debian's sid carries llama.cpp %s, not %s", e.Have, e.Want)
}

func (o InstallOptions) progress(format string, a ...any) {
	if o.Progress != nil {
		o.Progress(format, a...)
	}
}

// manifest records what is unpacked in the provision directory.
type manifest struct {
	Suite    string            `json:"suite"`
	Version  string            `json:"version,omitempty"` // llama.cpp's upstream version, e.g. "0.7.0"
	Mirror   string            `json:"mirror"`
	Backends []string          `json:"backends,omitempty"` // GPU backends, as ResolveBackends returns them
	Packages map[string]string `json:"packages"`           // file name -> sha256
}

// InstalledBackends returns the GPU backends provisioned in dir ("vulkan",
// "cuda"), or nil when there is no provisioned runtime or it has none.
func InstalledBackends(dir string) []string {
	m, err := readManifest(dir)
	if err != nil {
		return nil
	}
	return m.Backends
}

// Install provisions llama.cpp and the GPU backends opts asks for into
// opts.Dir and returns the runtime found there. A second run with the same
// backends downloads nothing new and only verifies the files.
func Install(ctx context.Context, opts InstallOptions) (Runtime, error) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return Runtime{}, fmt.Errorf("%w (%s/%s): %s", ErrUnsupportedPlatform, runtime.GOOS, runtime.GOARCH, manualInstallHint())
	}
	backends, err := ResolveBackends(opts.Backends)
	if err != nil {
		return Runtime{}, err
	}
	pkgs, components := packageSet(backends)
	system := osName(opts.OSRelease)
	for _, tool := range []string{"apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			return Runtime{}, fmt.Errorf("%w: %s has no %s, which provisioning needs (it fetches Debian's llama.cpp packages): %s",
				ErrUnsupportedPlatform, system, tool, manualInstallHint())
		}
	}
	if _, err := os.Stat(debianKeyring); err != nil {
		return Runtime{}, fmt.Errorf("%w: %s is missing, and the Debian packages cannot be checked without it: install it with `apt-get install debian-archive-keyring`",
			ErrUnsupportedPlatform, debianKeyring)
	}
	mirror := strings.TrimRight(opts.Mirror, "/")
	if mirror != "" {
		if u, err := url.Parse(mirror); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Runtime{}, fmt.Errorf("--mirror %q: want the http:// or https:// URL of a Debian archive (the directory holding dists/ and pool/)", opts.Mirror)
		}
	} else {
		sources := opts.Sources
		if sources == nil {
			sources = systemAptSources()
		}
		var err error
		if mirror, err = DebianMirror(sources); err != nil {
			return Runtime{}, fmt.Errorf("%w: %s's apt sources (%s) name no Debian archive. Potluck provisions Debian's llama.cpp packages, "+
				"which run on any glibc x86-64 Linux: give a Debian mirror that carries sid with `potluck engine install --mirror URL` "+
				"or POTLUCK_DEBIAN_MIRROR=URL, or %s", ErrUnsupportedPlatform, system, strings.Join(sources, ", "), manualInstallHint())
		}
	}
	a := aptDirs{root: filepath.Join(opts.Dir, "apt"), mirror: mirror, components: components}
	if err := a.init(); err != nil {
		return Runtime{}, err
	}
	debs := filepath.Join(opts.Dir, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return Runtime{}, err
	}

	var uris []debURI
	for attempt := 0; ; attempt++ {
		if attempt > 0 || !a.hasIndex() {
			opts.progress("Fetching the package index for Debian %s from %s", provisionSuite, mirror)
			if err := a.update(ctx); err != nil {
				return Runtime{}, err
			}
		}
		uris, err = a.printURIs(ctx, pkgs)
		if err == nil && opts.Version != "" {
			if have := debianVersion(uris); have != opts.Version {
				return Runtime{}, &DebianVersionError{Want: opts.Version, Have: have}
			}
		}
		if err == nil {
			err = a.download(ctx, debs, uris, opts.progress)
		}
		if err == nil {
			break
		}
		if attempt > 0 || ctx.Err() != nil {
			return Runtime{}, err
		}
		// sid moves: an old index names files that are gone. Refresh once.
		opts.progress("Package index is stale (%v); refreshing", err)
	}

	want := manifest{Suite: provisionSuite, Version: debianVersion(uris), Mirror: mirror, Backends: backends, Packages: map[string]string{}}
	for _, u := range uris {
		want.Packages[u.File] = u.SHA256
	}
	if have, err := readManifest(opts.Dir); err == nil && sameDebs(have, want) && rootComplete(opts.Dir) {
		opts.progress("llama.cpp runtime is up to date in %s", opts.Dir)
	} else {
		opts.progress("Unpacking %d packages", len(uris))
		if err := unpack(ctx, opts.Dir, debs, uris); err != nil {
			return Runtime{}, err
		}
		if err := writeManifest(opts.Dir, want); err != nil {
			return Runtime{}, err
		}
	}
	// Packages of older versions, or of a backend no longer wanted, only take space.
	pruneDebs(debs, want.Packages)
	rt, err := ProvisionedRuntime(opts.Dir)
	if err != nil {
		return Runtime{}, fmt.Errorf("provisioned runtime is incomplete: %w", err)
	}
	return rt, nil
}

// osName is the system's name from an os-release file, e.g. "Ubuntu 24.04
// LTS"; "this system" when it cannot be read.
func osName(path string) string {
	if path == "" {
		path = "/etc/os-release"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "this system"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			if v = strings.Trim(strings.TrimSpace(v), `"'`); v != "" {
				return v
			}
		}
	}
	return "this system"
}

// InstallAdvice says, for a person, how to get llama.cpp on this machine.
func InstallAdvice() string {
	return "start Potluck without --no-llama-fetch and it fetches llama.cpp by itself, or run `potluck engine install`; " +
		"without internet access, unpack llama.cpp into a folder and set POTLUCK_LLAMA_DIR to it"
}

func manualInstallHint() string {
	return "`potluck engine install --version VERSION` fetches llama.cpp's official release archive instead, " +
		"or unpack llama.cpp into a folder and set POTLUCK_LLAMA_DIR to it"
}

// pruneDebs removes the package files in debs that keep is not made of.
func pruneDebs(debs string, keep map[string]string) {
	files, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
	for _, f := range files {
		if _, ok := keep[filepath.Base(f)]; !ok {
			os.Remove(f)
		}
	}
}

func checkSHA256(path, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s: sha256 %s, want %s", filepath.Base(path), got, want)
	}
	return nil
}

// unpack extracts every package into a fresh tree and swaps it in, so an
// interrupted unpack never leaves a half-written runtime behind.
func unpack(ctx context.Context, dir, debs string, uris []debURI) error {
	tmp := filepath.Join(dir, "root.new")
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	for _, u := range uris {
		out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", filepath.Join(debs, u.File), tmp).CombinedOutput()
		if err != nil {
			return fmt.Errorf("dpkg-deb -x %s: %w: %s", u.File, err, lastLines(string(out), 3))
		}
	}
	// ggml looks for its backends (CPU variants, RPC, Vulkan, CUDA) next to
	// the executable, which under ld.so is the loader's directory.
	lib := filepath.Join(tmp, multiarchLibDir)
	backends, _ := filepath.Glob(filepath.Join(lib, "ggml", "backends0", "libggml-*.so"))
	for _, b := range backends {
		rel, _ := filepath.Rel(lib, b)
		if err := os.Symlink(rel, filepath.Join(lib, filepath.Base(b))); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	final := filepath.Join(dir, "root")
	if err := os.RemoveAll(final); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

// debianVersion is llama.cpp's upstream version in the file name of the
// llama.cpp-tools package: "0.7.0" of llama.cpp-tools_0.7.0+dfsg-1_amd64.deb.
func debianVersion(uris []debURI) string {
	for _, u := range uris {
		if rest, ok := strings.CutPrefix(u.File, "llama.cpp-tools_"); ok {
			v, _, _ := strings.Cut(rest, "_")
			if _, after, ok := strings.Cut(v, "%3a"); ok { // an epoch, escaped
				v = after
			}
			if _, after, ok := strings.Cut(v, ":"); ok {
				v = after
			}
			if f := strings.FieldsFunc(v, func(r rune) bool { return r == '+' || r == '-' || r == '~' }); len(f) > 0 {
				return f[0]
			}
			return ""
		}
	}
	return ""
}

// ProvisionedVersion is the llama.cpp version Install unpacked in dir, or
// "" when there is none (or it predates the version's record).
func ProvisionedVersion(dir string) string {
	m, err := readManifest(dir)
	if err != nil || !rootComplete(dir) {
		return ""
	}
	if m.Version == "" {
		for f := range m.Packages {
			if v := debianVersion([]debURI{{File: f}}); v != "" {
				return v
			}
		}
	}
	return m.Version
}

// ProvisionedRuntime is the runtime Install unpacked in dir.
func ProvisionedRuntime(dir string) (Runtime, error) {
	var rt Runtime
	var ok bool
	if rt.Server, ok = provisionedBinary(dir, serverNames); !ok {
		return rt, fmt.Errorf("%w: no provisioned runtime in %s", ErrNotFound, dir)
	}
	rt.Worker, _ = provisionedBinary(dir, workerNames)
	return rt, nil
}

func rootComplete(dir string) bool {
	_, ok := provisionedBinary(dir, serverNames)
	return ok
}

func provisionedBinary(dir string, names []string) (Binary, bool) {
	root := filepath.Join(dir, "root")
	loader := filepath.Join(root, provisionLoader)
	if !isExecutable(loader) {
		return Binary{}, false
	}
	lib := filepath.Join(root, multiarchLibDir)
	for _, d := range []string{filepath.Join(root, "usr/bin"), filepath.Join(root, provisionLibexec)} {
		for _, n := range names {
			if p := filepath.Join(d, n); isExecutable(p) {
				return Binary{Path: p, Loader: loader, LibraryPath: []string{lib, filepath.Join(lib, "llama")}, Source: "provisioned"}, true
			}
		}
	}
	return Binary{}, false
}

func readManifest(dir string) (manifest, error) {
	var m manifest
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(data, &m)
}

func writeManifest(dir string, m manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "manifest.json"), data, 0o644)
}

func sameDebs(a, b manifest) bool {
	if a.Suite != b.Suite || len(a.Packages) != len(b.Packages) {
		return false
	}
	for k, v := range b.Packages {
		if a.Packages[k] != v {
			return false
		}
	}
	return true
}
