// Package runtimestest serves llama.cpp's releases for tests, on loopback:
// the releases API at /repos/ggml-org/llama.cpp/releases/tags/TAG with each
// asset's size and sha256 digest, downloads behind a redirect to a CDN path,
// and Range requests. The archives are real llama.cpp builds in the official
// names and layouts (flat zips for Windows, a tar.gz wrapping a llama-TAG/
// folder for Linux), made from the binaries scripts/llama-build.sh builds.
// It can cut a transfer midway, publish a wrong digest or none at all.
package runtimestest

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/potluck-gpu/potluck/internal/rangeserve"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Repo is the repository path the fake API serves, as the real one does.
const Repo = "/repos/ggml-org/llama.cpp"

// Server is a running fake release service.
type Server struct {
	// URL is the base of the releases API, for --releases and
	// POTLUCK_LLAMA_RELEASES.
	URL string
	srv *httptest.Server

	mu       sync.Mutex
	releases map[string]map[string][]byte // tag → asset name → content
	digests  map[string]string            // asset name → digest published instead of the real one ("" to publish none)
	cut      int64                        // cut the next transfer after this many bytes; 0: none
	rate     int64                        // bytes a second downloads are sent at; 0: as fast as possible

	ranges   []string
	apiCalls atomic.Int64
	served   atomic.Int64
}

// New starts a release service; it stops when the test ends.
func New(t testing.TB) *Server {
	s := Start()
	t.Cleanup(s.Close)
	return s
}

// Start starts a release service, for programs that are not tests.
func Start() *Server {
	s := &Server{releases: map[string]map[string][]byte{}, digests: map[string]string{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL + Repo
	return s
}

// Close stops the service.
func (s *Server) Close() { s.srv.Close() }

// Add publishes content as asset name of release tag.
func (s *Server) Add(tag, name string, content []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.releases[tag] == nil {
		s.releases[tag] = map[string][]byte{}
	}
	s.releases[tag][name] = content
}

// Asset returns an asset's content.
func (s *Server) Asset(tag, name string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.releases[tag][name]
}

// SetDigest makes the API publish digest for asset name instead of its
// real one; "" publishes none.
func (s *Server) SetDigest(name, digest string) {
	s.mu.Lock()
	s.digests[name] = digest
	s.mu.Unlock()
}

// CutNext ends the next download after n bytes, as a dropped connection
// does.
func (s *Server) CutNext(n int64) {
	s.mu.Lock()
	s.cut = n
	s.mu.Unlock()
}

// SetRate sends downloads at about bytesPerSecond from now on (0: as fast
// as the connection goes), so a test can act in the middle of one.
func (s *Server) SetRate(bytesPerSecond int64) {
	s.mu.Lock()
	s.rate = bytesPerSecond
	s.mu.Unlock()
}

// Ranges returns the Range headers of the downloads so far.
func (s *Server) Ranges() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

// Served is the archive bytes sent so far; APICalls the releases API
// requests answered.
func (s *Server) Served() int64   { return s.served.Load() }
func (s *Server) APICalls() int64 { return s.apiCalls.Load() }

// Sum is the hex sha256 of data.
func Sum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, Repo+"/releases/tags/"):
		s.apiCalls.Add(1)
		s.serveRelease(w, strings.TrimPrefix(p, Repo+"/releases/tags/"))
	case strings.HasPrefix(p, "/download/"):
		// As the real download URL does: a redirect to the CDN.
		tag, name, _ := strings.Cut(strings.TrimPrefix(p, "/download/"), "/")
		data := s.Asset(tag, name)
		if data == nil {
			http.NotFound(w, r)
			return
		}
		http.Redirect(w, r, s.srv.URL+"/cdn/"+Sum(data)+"/"+name+"?tag="+tag, http.StatusFound)
	case strings.HasPrefix(p, "/cdn/"):
		s.serveCDN(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serveRelease(w http.ResponseWriter, tag string) {
	s.mu.Lock()
	assets, ok := s.releases[tag]
	type asset struct {
		Name   string `json:"name"`
		Size   int    `json:"size"`
		Digest string `json:"digest,omitempty"`
		URL    string `json:"browser_download_url"`
	}
	var list []asset
	for name, data := range assets {
		a := asset{Name: name, Size: len(data), Digest: "sha256:" + Sum(data), URL: s.srv.URL + "/download/" + tag + "/" + name}
		if d, set := s.digests[name]; set {
			a.Digest = d
		}
		list = append(list, a)
	}
	s.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"Not Found","status":"404"}`)
		return
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"tag_name": tag, "name": tag, "assets": list})
}

func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	sum, name, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/cdn/"), "/")
	s.mu.Lock()
	data := s.releases[r.URL.Query().Get("tag")][name]
	cut, rate := s.cut, s.rate
	s.cut = 0
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.mu.Unlock()
	if data == nil || Sum(data) != sum {
		http.NotFound(w, r)
		return
	}
	s.served.Add(rangeserve.Serve(w, r, data, rangeserve.Options{Cut: cut, Rate: rate}))
}

// AddBuild publishes a llama.cpp build (the folder of scripts/llama-build.sh)
// as release Tag(version)'s archives for goos (linux or windows) on x64,
// under each backend name the release offers there; the archives hold the
// same CPU build, as no GPU backend can be built here. It returns the
// archive names.
func (s *Server) AddBuild(version, goos, dir string) ([]string, error) {
	tag := "v" + strings.TrimPrefix(version, "v")
	var names []string
	switch goos {
	case "linux":
		data, err := tarGz(dir, "llama-"+tag)
		if err != nil {
			return nil, err
		}
		for _, n := range []string{"ubuntu-x64", "ubuntu-vulkan-x64"} {
			name := "llama-" + tag + "-bin-" + n + ".tar.gz"
			s.Add(tag, name, data)
			names = append(names, name)
		}
	case "windows":
		data, err := zipDir(dir)
		if err != nil {
			return nil, err
		}
		for _, n := range []string{"win-cpu-x64", "win-vulkan-x64", "win-cuda-12.4-x64"} {
			name := "llama-" + tag + "-bin-" + n + ".zip"
			s.Add(tag, name, data)
			names = append(names, name)
		}
		// The CUDA runtime's own archive: no NVIDIA DLL can be had here, so
		// it carries only the build's license, in the official name.
		cudart, err := zipFiles(map[string]string{"LICENSE": filepath.Join(dir, "LICENSE")})
		if err != nil {
			return nil, err
		}
		s.Add(tag, "cudart-llama-bin-win-cuda-12.4-x64.zip", cudart)
		names = append(names, "cudart-llama-bin-win-cuda-12.4-x64.zip")
	default:
		return nil, fmt.Errorf("runtimestest: no archives for %s", goos)
	}
	return names, nil
}

// tarGz packs dir as the official Linux archives are: every file under one
// folder, top, with symbolic links kept.
func tarGz(dir, top string) ([]byte, error) {
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Name: top + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		h := &tar.Header{Name: top + "/" + e.Name(), Mode: int64(fi.Mode().Perm()), ModTime: time.Unix(0, 0)}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return nil, err
			}
			h.Typeflag, h.Linkname = tar.TypeSymlink, target
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
		case fi.Mode().IsRegular():
			h.Typeflag, h.Size = tar.TypeReg, fi.Size()
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
			f, err := os.Open(p)
			if err != nil {
				return nil, err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// zipDir packs dir's files flat, as the official Windows zips are.
func zipDir(dir string) ([]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	files := map[string]string{}
	for _, e := range entries {
		if e.Type().IsRegular() {
			files[e.Name()] = filepath.Join(dir, e.Name())
		}
	}
	return zipFiles(files)
}

func zipFiles(files map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Deflate, Modified: time.Unix(0, 0)})
		if err != nil {
			return nil, err
		}
		f, err := os.Open(files[n])
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(w, f)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Build is a llama.cpp build made by scripts/llama-build.sh.
type Build struct {
	Version string // e.g. "0.5.0"
	Dir     string // its llama-server, ggml-rpc-server and libraries
}

var (
	buildsMu sync.Mutex
	builds   = map[string]Build{}
)

// Binaries returns the llama.cpp build for goos ("linux" or "windows") that
// scripts/llama-build.sh makes from node-llama-cpp's llama.cpp source,
// running it when its cache does not hold one yet (minutes the first time,
// cached after). Without the tools it needs, the test is skipped, except
// in CI (CI=true), where it fails: `make test` provides them.
func Binaries(t testing.TB, goos string) Build {
	t.Helper()
	buildsMu.Lock()
	defer buildsMu.Unlock()
	if b, ok := builds[goos]; ok {
		return b
	}
	script := filepath.Join(moduleRoot(t), "scripts", "llama-build.sh")
	cmd := exec.Command("bash", script, goos)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := fmt.Sprintf("scripts/llama-build.sh %s: %v: %s", goos, err, lastLines(stderr.String(), 8))
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg + " (make llama-builds provides what it needs)")
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == goos {
			b := Build{Version: f[1], Dir: f[2]}
			builds[goos] = b
			return b
		}
	}
	t.Fatalf("scripts/llama-build.sh %s printed no build: %q", goos, out)
	return Build{}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func moduleRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", dir)
		}
	}
}
