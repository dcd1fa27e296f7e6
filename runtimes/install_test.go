package runtimes_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/runtimes"
	"github.com/potluck-gpu/potluck/runtimes/runtimestest"
)

// release starts a release service carrying the Linux build of
// node-llama-cpp's llama.cpp, and returns it with that build's version.
func release(t *testing.T) (*runtimestest.Server, string) {
	t.Helper()
	b := runtimestest.Binaries(t, "linux")
	srv := runtimestest.New(t)
	if _, err := srv.AddBuild(b.Version, "linux", b.Dir); err != nil {
		t.Fatal(err)
	}
	return srv, b.Version
}

func client(t *testing.T, srv *runtimestest.Server) *runtimes.Client {
	t.Helper()
	c, err := runtimes.NewClient(srv.URL, "potluck-test")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type progressLog struct {
	mu    sync.Mutex
	steps []runtimes.Progress
}

func (l *progressLog) add(p runtimes.Progress) {
	l.mu.Lock()
	l.steps = append(l.steps, p)
	l.mu.Unlock()
}

func (l *progressLog) has(f func(runtimes.Progress) bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.steps, f)
}

// noLeftovers fails if a failed install left anything but the download
// folder's partial files in the store.
func noLeftovers(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "downloads" {
			t.Errorf("a failed install left %s in the store", e.Name())
		}
	}
}

func TestInstallFromReleases(t *testing.T) {
	srv, version := release(t)
	store := runtimes.Store{Dir: t.TempDir()}
	var log progressLog
	ctx := context.Background()
	got, err := store.Install(ctx, runtimes.InstallOptions{Version: "v" + version, Releases: client(t, srv), ReleasesGiven: true, Progress: log.add})
	if err != nil {
		t.Fatal(err)
	}
	if got.Build.Version != version || got.Build.Backend != runtimes.BackendCPU || !got.Fetched || got.Choice.Why == "" {
		t.Fatalf("installed %+v", got)
	}
	if want := filepath.Join(store.Dir, "v"+version+"-cpu"); got.Build.Dir != want {
		t.Errorf("build in %s, want %s", got.Build.Dir, want)
	}
	asset := "llama-v" + version + "-bin-ubuntu-x64.tar.gz"
	if got.Build.Assets[asset] != runtimestest.Sum(srv.Asset("v"+version, asset)) {
		t.Errorf("the build records %v, not the archive's sha256", got.Build.Assets)
	}
	if !log.has(func(p runtimes.Progress) bool { return p.Total > 0 && p.Completed == p.Total && p.From == "releases" }) ||
		!log.has(func(p runtimes.Progress) bool {
			return strings.HasPrefix(p.Status, "Getting llama.cpp "+version+" (CPU, ")
		}) {
		t.Errorf("no progress to the end: %+v", log.steps)
	}
	rt, err := got.Build.Runtime()
	if err != nil {
		t.Fatal(err)
	}
	v, err := rt.Probe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Release != version || v.RPCProtocol == "" {
		t.Fatalf("the unpacked llama.cpp reports %+v", v)
	}
	if _, err := os.Stat(filepath.Join(store.Dir, "downloads", asset)); !os.IsNotExist(err) {
		t.Errorf("the archive stays after unpacking: %v", err)
	}

	served := srv.Served()
	again, err := store.Install(ctx, runtimes.InstallOptions{Version: version, Releases: client(t, srv), ReleasesGiven: true})
	if err != nil || again.Fetched || again.Build.Dir != got.Build.Dir || srv.Served() != served {
		t.Fatalf("a second install fetched again: %+v, %v (%d more bytes)", again, err, srv.Served()-served)
	}
	if b, ok := store.Find(version, ""); !ok || b.Dir != got.Build.Dir {
		t.Errorf("Find(%s) = %+v, %v", version, b, ok)
	}
}

func TestInstallRefusesBadDigests(t *testing.T) {
	srv, version := release(t)
	asset := "llama-v" + version + "-bin-ubuntu-x64.tar.gz"
	for name, digest := range map[string]string{
		"wrong":   "sha256:" + strings.Repeat("ab", 32),
		"none":    "",
		"not-sha": "md5:0123456789abcdef0123456789abcdef",
	} {
		t.Run(name, func(t *testing.T) {
			srv.SetDigest(asset, digest)
			store := runtimes.Store{Dir: t.TempDir()}
			_, err := store.Install(context.Background(), runtimes.InstallOptions{Version: version, Releases: client(t, srv), ReleasesGiven: true})
			var ae *runtimes.ArchiveError
			if !errors.As(err, &ae) || ae.Asset != asset || !strings.Contains(err.Error(), "nothing was installed") {
				t.Fatalf("Install = %v, want an ArchiveError for %s", err, asset)
			}
			if name == "wrong" && !strings.Contains(err.Error(), "tampered") {
				t.Errorf("the error does not say the archive may have been tampered with: %v", err)
			}
			t.Log(err)
			noLeftovers(t, store.Dir)
			partials, _ := filepath.Glob(filepath.Join(store.Dir, "downloads", "*"))
			if len(partials) > 0 {
				t.Errorf("a refused archive stays on disk: %v", partials)
			}
			if got := store.Installed(); len(got) > 0 {
				t.Errorf("installed: %+v", got)
			}
		})
	}
}

func TestInstallResumesACutTransfer(t *testing.T) {
	srv, version := release(t)
	asset := "llama-v" + version + "-bin-ubuntu-x64.tar.gz"
	size := int64(len(srv.Asset("v"+version, asset)))
	store := runtimes.Store{Dir: t.TempDir()}
	opts := runtimes.InstallOptions{Version: version, Releases: client(t, srv), ReleasesGiven: true}

	// Cancelled halfway: the partial archive stays for the next try.
	ctx, cancel := context.WithCancel(context.Background())
	opts.Progress = func(p runtimes.Progress) {
		if p.Total > 0 && p.Completed > p.Total/3 {
			cancel()
		}
	}
	srv.SetRate(size) // a second for the whole archive
	if _, err := store.Install(ctx, opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled install: %v", err)
	}
	srv.SetRate(0)
	noLeftovers(t, store.Dir)

	// Cut once more at 3/4, then resumed to the end.
	opts.Progress = nil
	srv.CutNext(size / 4)
	start := time.Now()
	got, err := store.Install(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	var resumed []string
	for _, r := range srv.Ranges() {
		if r != "" {
			resumed = append(resumed, r)
		}
	}
	if len(resumed) < 2 {
		t.Fatalf("Range requests %q: want the transfer resumed after the cancel and after the cut", srv.Ranges())
	}
	if srv.Served() > size+size/2 {
		t.Errorf("served %d bytes for a %d-byte archive: resuming fetched it again", srv.Served(), size)
	}
	t.Logf("resumed with %q in %v", resumed, time.Since(start))
	if _, err := got.Build.Runtime(); err != nil {
		t.Fatal(err)
	}
}

// TestInstallWindowsCUDA installs the Windows CUDA build, whose CUDA
// runtime comes in a second archive, into one folder.
func TestInstallWindowsCUDA(t *testing.T) {
	srv := runtimestest.New(t)
	zipOf := func(files map[string]string) []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for name, body := range files {
			w, _ := zw.Create(name)
			w.Write([]byte(body))
		}
		zw.Close()
		return buf.Bytes()
	}
	srv.Add("v0.7.0", "llama-v0.7.0-bin-win-cuda-12.4-x64.zip", zipOf(map[string]string{"llama-server.exe": "MZ", "ggml-rpc-server.exe": "MZ", "ggml-cuda.dll": "MZ"}))
	srv.Add("v0.7.0", "cudart-llama-bin-win-cuda-12.4-x64.zip", zipOf(map[string]string{"cudart64_12.dll": "MZ", "cublas64_12.dll": "MZ"}))
	store := runtimes.Store{Dir: t.TempDir(), Platform: runtimes.Platform{OS: "windows", Arch: "amd64"}}
	got, err := store.Install(context.Background(), runtimes.InstallOptions{Version: "0.7.0", Backend: runtimes.BackendCUDA, Releases: client(t, srv), ReleasesGiven: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"llama-server.exe", "ggml-cuda.dll", "cudart64_12.dll", "cublas64_12.dll"} {
		if _, err := os.Stat(filepath.Join(got.Build.Dir, f)); err != nil {
			t.Error(err)
		}
	}
	if len(got.Build.Assets) != 2 || filepath.Base(got.Build.Dir) != "v0.7.0-cuda" {
		t.Errorf("build %+v", got.Build)
	}

	// A release without the archive asked for says which one is missing.
	_, err = store.Install(context.Background(), runtimes.InstallOptions{Version: "0.7.0", Backend: runtimes.BackendVulkan, Releases: client(t, srv), ReleasesGiven: true})
	if err == nil || !strings.Contains(err.Error(), "llama-v0.7.0-bin-win-vulkan-x64.zip") {
		t.Errorf("a missing archive: %v", err)
	}
	_, err = store.Install(context.Background(), runtimes.InstallOptions{Version: "0.6.0", Backend: runtimes.BackendCPU, Releases: client(t, srv), ReleasesGiven: true})
	if err == nil || !strings.Contains(err.Error(), "no release v0.6.0") {
		t.Errorf("a missing release: %v", err)
	}
}

func TestPruneKeepsTwoVersions(t *testing.T) {
	srv := runtimestest.New(t)
	zipped := func() []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.Create("llama-server.exe")
		w.Write([]byte("MZ"))
		zw.Close()
		return buf.Bytes()
	}()
	store := runtimes.Store{Dir: t.TempDir(), Platform: runtimes.Platform{OS: "windows", Arch: "amd64"}}
	for _, v := range []string{"0.5.0", "0.6.0", "0.7.0"} {
		srv.Add("v"+v, "llama-v"+v+"-bin-win-cpu-x64.zip", zipped)
		if _, err := store.Install(context.Background(), runtimes.InstallOptions{Version: v, Backend: runtimes.BackendCPU, Releases: client(t, srv), ReleasesGiven: true}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // distinct install times
	}
	removed := store.Prune("0.5.0")
	var left []string
	for _, b := range store.Installed() {
		left = append(left, b.Version)
	}
	if !slices.Equal(left, []string{"0.7.0", "0.5.0"}) || len(removed) != 1 || removed[0].Version != "0.6.0" {
		t.Fatalf("after Prune(0.5.0): left %v, removed %+v; want 0.7.0 (newest) and 0.5.0 (kept)", left, removed)
	}
}

func TestNewClientWantsHTTPS(t *testing.T) {
	for _, bad := range []string{"http://mirror.example/llama", "ftp://x/y", "releases"} {
		if _, err := runtimes.NewClient(bad, ""); err == nil {
			t.Errorf("NewClient(%q) accepted it", bad)
		}
	}
	for _, ok := range []string{"", "https://mirror.example/repos/ggml-org/llama.cpp", "http://127.0.0.1:8000/r", "http://[::1]:8000/r", "http://localhost/r"} {
		if _, err := runtimes.NewClient(ok, ""); err != nil {
			t.Errorf("NewClient(%q): %v", ok, err)
		}
	}
}
