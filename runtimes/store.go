package runtimes

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/internal/atomicfile"
)

// Store is the folder of llama.cpp builds on this machine:
//
//	DIR/v0.7.0-vulkan/   a release archive, unpacked (one folder per version and backend)
//	DIR/debian/          Debian's packages, unpacked (see engine.Install)
//	DIR/downloads/       archives being fetched, resumed from here
type Store struct {
	Dir string
	// Platform is the machine the builds are for; zero: this one.
	Platform Platform
}

// DefaultDir is where builds live when no other folder is given: the
// user's cache directory (%LOCALAPPDATA% on Windows).
func DefaultDir() string { return engine.DefaultProvisionDir() }

func (s Store) platform() Platform {
	if s.Platform.OS == "" {
		return Platform{runtime.GOOS, runtime.GOARCH}
	}
	return s.Platform
}

func (s Store) debianDir() string { return filepath.Join(s.Dir, "debian") }

// Source values of Build.
const (
	SourceRelease = "release" // an official release archive
	SourceDebian  = "debian"  // Debian's packages
)

// Build is one installed llama.cpp build.
type Build struct {
	Version string `json:"version"` // e.g. "0.7.0"
	// Backend is the build's GPU backend; a Debian build lists its own in
	// Backends and has Backend "debian".
	Backend  string   `json:"backend"`
	Backends []string `json:"backends,omitempty"`
	Source   string   `json:"source"`
	Dir      string   `json:"dir"`
	// Assets are the archives it was unpacked from, name to sha256.
	Assets      map[string]string `json:"assets,omitempty"`
	Bytes       int64             `json:"bytes,omitempty"` // downloaded
	InstalledAt time.Time         `json:"installed_at"`
}

// Name is the build as people read it: "0.7.0 (vulkan)", "0.7.0 (Debian)".
func (b Build) Name() string {
	if b.Source == SourceDebian {
		return b.Version + " (Debian)"
	}
	return b.Version + " (" + b.Backend + ")"
}

// Runtime is the build's llama-server and RPC worker.
func (b Build) Runtime() (engine.Runtime, error) {
	if b.Source == SourceDebian {
		return engine.ProvisionedRuntime(b.Dir)
	}
	rt, err := engine.Locator{Dir: b.Dir}.Find()
	if err != nil {
		return rt, fmt.Errorf("llama.cpp %s in %s is incomplete: %w", b.Name(), b.Dir, err)
	}
	rt.Server.Source, rt.Worker.Source = "provisioned "+b.Name(), "provisioned "+b.Name()
	if rt.Worker.Path == "" {
		rt.Worker.Source = ""
	}
	return rt, nil
}

const buildManifest = "potluck-build.json"

// Installed lists the builds in the store, newest version first.
func (s Store) Installed() []Build {
	s.migrate()
	var out []Build
	entries, _ := os.ReadDir(s.Dir)
	for _, e := range entries {
		dir := filepath.Join(s.Dir, e.Name())
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() { // a link to a folder counts
			continue
		}
		if dir == s.debianDir() {
			if v := engine.ProvisionedVersion(dir); v != "" {
				b := Build{Version: v, Backend: SourceDebian, Backends: engine.InstalledBackends(dir), Source: SourceDebian, Dir: dir}
				if fi, err := os.Stat(filepath.Join(dir, "manifest.json")); err == nil {
					b.InstalledAt = fi.ModTime()
				}
				out = append(out, b)
			}
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, buildManifest))
		if err != nil {
			continue
		}
		var b Build
		if json.Unmarshal(data, &b) != nil || b.Version == "" {
			continue
		}
		b.Dir, b.Source = dir, SourceRelease
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Build) int {
		return cmp.Or(-compareVersions(a.Version, b.Version), cmp.Compare(backendRank(a.Backend), backendRank(b.Backend)))
	})
	return out
}

// backendRank orders a version's builds: Debian's first (it may carry
// CUDA and Vulkan at once), then Backends' order.
func backendRank(b string) int {
	if b == SourceDebian {
		return -1
	}
	if i := slices.Index(Backends, b); i >= 0 {
		return i
	}
	return len(Backends)
}

// Find returns the installed build of version that suits the machine best:
// the backend asked for (empty: any), Debian's where it has that version.
func (s Store) Find(version, backend string) (Build, bool) {
	var match []Build
	for _, b := range s.Installed() {
		if version != "" && b.Version != version && !(version == VersionDebian && b.Source == SourceDebian) {
			continue
		}
		if backend == "" || b.Backend == backend || (b.Source == SourceDebian && debianHas(b, backend)) {
			match = append(match, b)
		}
	}
	if len(match) == 0 {
		return Build{}, false
	}
	return match[0], true
}

// Runtime is the runtime of the installed build of version that suits the
// machine best; with newest set, the newest build there is when version
// has none.
func (s Store) Runtime(version string, newest bool) (engine.Runtime, bool) {
	b, ok := s.Find(version, "")
	if !ok && newest {
		b, ok = s.Find("", "")
	}
	if !ok {
		return engine.Runtime{}, false
	}
	rt, err := b.Runtime()
	return rt, err == nil
}

// debianHas says whether a Debian build has a backend: every Debian
// build has the CPU's, and those it was provisioned with.
func debianHas(b Build, backend string) bool {
	return backend == BackendCPU || slices.Contains(b.Backends, backend) ||
		(backend == BackendVulkan && len(b.Backends) > 0)
}

// Remove deletes a build, whole.
func (s Store) Remove(b Build) error {
	if rel, err := filepath.Rel(s.Dir, b.Dir); err != nil || !filepath.IsLocal(rel) {
		return fmt.Errorf("%s is not in %s", b.Dir, s.Dir)
	}
	return os.RemoveAll(b.Dir)
}

// MaxVersions is how many llama.cpp versions the store keeps: the one this
// Potluck runs, and one more that a peer's split asked for.
const MaxVersions = 2

// Prune deletes the builds of versions other than keep, so that at most
// MaxVersions versions stay; the versions in keep come first, then the most
// recently installed. It returns what it removed.
func (s Store) Prune(keep ...string) []Build {
	builds := s.Installed()
	kept := map[string]bool{}
	for _, v := range keep {
		if v == VersionDebian {
			if i := slices.IndexFunc(builds, func(b Build) bool { return b.Source == SourceDebian }); i >= 0 {
				v = builds[i].Version
			}
		}
		if len(kept) < MaxVersions && v != "" {
			kept[v] = true
		}
	}
	byTime := slices.Clone(builds)
	slices.SortStableFunc(byTime, func(a, b Build) int { return b.InstalledAt.Compare(a.InstalledAt) })
	for _, b := range byTime {
		if len(kept) >= MaxVersions {
			break
		}
		kept[b.Version] = true
	}
	var removed []Build
	for _, b := range builds {
		if kept[b.Version] {
			continue
		}
		if err := s.Remove(b); err == nil {
			removed = append(removed, b)
		}
	}
	return removed
}

func writeBuildManifest(dir string, b Build) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, buildManifest), data, 0o644)
}

// compareVersions orders "0.7.0" after "0.5.0" and "0.10.0" after "0.9.1";
// build tags ("b6123") compare by number.
func compareVersions(a, b string) int {
	pa, pb := versionParts(a), versionParts(b)
	for i := range max(len(pa), len(pb)) {
		var x, y int
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		if c := cmp.Compare(x, y); c != 0 {
			return c
		}
	}
	return strings.Compare(a, b)
}

func versionParts(v string) []int {
	var out []int
	for _, p := range strings.Split(strings.TrimPrefix(v, "b"), ".") {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil {
			return out
		}
		out = append(out, n)
	}
	return out
}

// migrate moves a Debian runtime unpacked by an earlier Potluck straight
// into Dir (root/, apt/, debs/, manifest.json) into Dir/debian/, where
// builds of Debian's packages live now.
func (s Store) migrate() {
	if _, err := os.Stat(filepath.Join(s.Dir, "manifest.json")); err != nil {
		return
	}
	if _, err := os.Stat(s.debianDir()); err == nil {
		return
	}
	if err := os.MkdirAll(s.debianDir(), 0o755); err != nil {
		return
	}
	for _, name := range []string{"root", "apt", "debs", "manifest.json"} {
		os.Rename(filepath.Join(s.Dir, name), filepath.Join(s.debianDir(), name))
	}
	// apt's private sources.list names its own folder: write it again.
	os.Remove(filepath.Join(s.debianDir(), "apt", "sources.list"))
}
