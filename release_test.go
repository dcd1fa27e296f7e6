package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/runtimes"
	"github.com/potluck-gpu/potluck/runtimes/runtimestest"
)

type engineDoc struct {
	Available    bool     `json:"available"`
	Error        string   `json:"error"`
	Release      string   `json:"release"`
	RPCProtocol  string   `json:"rpc_protocol"`
	Installed    []string `json:"installed"`
	Provisioning *struct {
		Version   string `json:"version"`
		Status    string `json:"status"`
		Total     int64  `json:"total"`
		Completed int64  `json:"completed"`
	} `json:"provisioning"`
}

func engineOf(st map[string]any) engineDoc {
	var d engineDoc
	remarshal(st["engine"], &d)
	return d
}

// releaseService serves the Linux build of node-llama-cpp's llama.cpp as
// the official release archives.
func releaseService(t *testing.T) (*runtimestest.Server, runtimestest.Build) {
	t.Helper()
	b := runtimestest.Binaries(t, "linux")
	srv := runtimestest.New(t)
	if _, err := srv.AddBuild(b.Version, "linux", b.Dir); err != nil {
		t.Fatal(err)
	}
	return srv, b
}

// A node on a machine without llama.cpp fetches the release archive it
// needs, checks it, and serves; a tampered archive is refused and leaves
// nothing behind.
func TestRunProvisionsFromReleases(t *testing.T) {
	m := enginetest.TestModel(t)
	srv, b := releaseService(t)
	cache := t.TempDir()
	noLlama := []string{"POTLUCK_LLAMA_DIR=", "PATH=/usr/bin:/bin"}
	p := startPotluckEnv(t, noLlama, "--model", m.Path, "--llama-cache", cache, "--releases", srv.URL, "--llama-version", b.Version)
	st := p.WaitStatus(t, "the model served with the fetched llama.cpp", modelReady)
	e := engineOf(st)
	if !e.Available || e.Release != b.Version || !slices.Contains(e.Installed, b.Version+" (cpu)") || e.Provisioning != nil {
		t.Fatalf("engine status %+v: want release %s, installed", e, b.Version)
	}
	text := enginetest.Complete(t, p.API, 24)
	if m.Stories && !strings.HasPrefix(strings.TrimSpace(text), enginetest.StoriesPrefix) {
		t.Errorf("completion = %q, want %q…", text, enginetest.StoriesPrefix)
	}
	if !strings.Contains(p.Logs.String(), "llama.cpp provisioned") {
		t.Errorf("the log does not say llama.cpp was provisioned:\n%s", p.Logs.String())
	}

	t.Run("tampered", func(t *testing.T) {
		asset := "llama-v" + b.Version + "-bin-ubuntu-x64.tar.gz"
		srv.SetDigest(asset, "sha256:"+strings.Repeat("0f", 32))
		defer srv.SetDigest(asset, "sha256:"+runtimestest.Sum(srv.Asset("v"+b.Version, asset)))
		cache := t.TempDir()
		p := startPotluckEnv(t, noLlama, "--llama-cache", cache, "--releases", srv.URL, "--llama-version", b.Version)
		st := p.WaitStatus(t, "the refusal", func(st map[string]any) bool {
			return engineOf(st).Provisioning == nil && strings.Contains(engineOf(st).Error, "refused")
		})
		e := engineOf(st)
		if e.Available || !strings.Contains(e.Error, asset) || !strings.Contains(e.Error, "tampered") {
			t.Errorf("engine status %+v: want the archive named and refused", e)
		}
		var left []string
		filepath.Walk(cache, func(path string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				left = append(left, path)
			}
			return nil
		})
		if len(left) > 0 {
			t.Errorf("a refused archive left files behind: %v", left)
		}
	})
}

// A head on one llama.cpp version and a worker provisioned from Debian's
// packages, which speaks another RPC protocol: the worker fetches the
// head's version for itself and lends with it, and the split gives the
// same greedy text as one process, with nobody typing anything.
func TestSplitAcrossVersions(t *testing.T) {
	m := enginetest.TestModel(t)
	debian, ok := runtimes.Store{Dir: runtimes.DefaultDir()}.Find(runtimes.VersionDebian, "")
	if !ok {
		t.Fatal("no llama.cpp from Debian's packages in the default store (make llama provisions it)")
	}
	srv, b := releaseService(t)
	if debian.Version == b.Version {
		t.Skipf("Debian carries %s, the version the test builds: no mismatch to reconcile", b.Version)
	}
	// The single process, on the head's version.
	headCache := t.TempDir()
	installed, err := runtimes.Store{Dir: headCache}.Install(t.Context(), runtimes.InstallOptions{
		Version: b.Version, Releases: mustClient(t, srv.URL), ReleasesGiven: true})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := installed.Build.Runtime()
	if err != nil {
		t.Fatal(err)
	}
	want := enginetest.Complete(t, enginetest.Server(t, rt, engine.ServerSpec{Model: m.Path}), 32)

	// The worker's store holds Debian's build (a link to the machine's own).
	workerCache := t.TempDir()
	if err := os.Symlink(debian.Dir, filepath.Join(workerCache, "debian")); err != nil {
		t.Fatal(err)
	}
	token := newToken(t)
	env := []string{"POTLUCK_P2P_HEARTBEAT=1s", "POTLUCK_LLAMA_DIR=", "PATH=/usr/bin:/bin", "POTLUCK_LLAMA_RELEASES=" + srv.URL}
	head := startPotluckEnv(t, env, meshArgs(token, "--name", "head", "--model", m.Path, "--split", "all",
		"--llama-cache", headCache, "--llama-version", b.Version)...)
	boot := head.meshStatus(t).P2PAddrs[0]
	worker := startPotluckEnv(t, env, meshArgs(token, "--name", "worker", "--share", "worker", "--bootstrap", boot,
		"--llama-cache", workerCache, "--llama-version", runtimes.VersionDebian)...)
	if e := engineOf(worker.WaitStatus(t, "the worker's engine", func(st map[string]any) bool { return engineOf(st).Available })); e.Release != debian.Version {
		t.Fatalf("the worker runs %+v, want Debian's %s", e, debian.Version)
	}
	wid := worker.meshStatus(t).PeerID
	start := time.Now()
	d := head.waitPlan(t, "the worker in the plan with the head's version", 120*time.Second, func(d planDoc) bool {
		return layersOf(d, wid) > 0
	})
	t.Logf("the worker joined the split %v after it started; plan:\n%s", time.Since(start).Round(time.Millisecond), d.Plan.String())
	st := worker.WaitStatus(t, "the worker on the head's version", func(st map[string]any) bool {
		w, _ := st["worker"].(map[string]any)
		return w != nil && w["release"] == b.Version
	})
	if w := st["worker"].(map[string]any); w["matches"] != "head" {
		t.Errorf("the worker's status does not name the head it matches: %v", w)
	}
	if e := engineOf(st); !slices.Contains(e.Installed, b.Version+" (cpu)") || !slices.Contains(e.Installed, debian.Name()) || len(e.Installed) > runtimes.MaxVersions {
		t.Errorf("the worker's builds: %v", e.Installed)
	}
	if got := completes(head.API, 32); got != want {
		t.Errorf("split across versions = %q, want %q (one process)", got, want)
	}
}

func mustClient(t *testing.T, url string) *runtimes.Client {
	t.Helper()
	c, err := runtimes.NewClient(url, "potluck-test")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// remarshal copies v into out through JSON.
func remarshal(v any, out any) {
	data, _ := json.Marshal(v)
	json.Unmarshal(data, out)
}

// `potluck --version` answers as `potluck version` does.
func TestVersionFlag(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		var out, errb strings.Builder
		if code := realMain(args, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "potluck ") {
			t.Errorf("potluck %s: exit %d, %q %q", args[0], code, out.String(), errb.String())
		}
	}
}
