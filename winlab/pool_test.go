//go:build linux

package winlab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine"
	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/runtimes"
	"github.com/potluck-gpu/potluck/runtimes/runtimestest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	nodetest.RemoveBinary()
	os.Exit(code)
}

// LinuxNode is the Linux program, as a test starts it.
type LinuxNode struct{ *nodetest.Node }

func startLinux(t testing.TB, args ...string) *LinuxNode {
	t.Helper()
	return &LinuxNode{nodetest.Start(t, nodetest.Config{
		Name: "Linux node", Threads: 2, Args: args, Grace: 20 * time.Second,
		Env: append(nodetest.Environ(), "POTLUCK_LLAMA_DIR=", "PATH=/usr/bin:/bin"),
	})}
}

func (n *LinuxNode) Status(t testing.TB) status {
	t.Helper()
	var st status
	if err := nodetest.GetJSON(n.API+"/api/status", &st); err != nil {
		t.Fatal(err)
	}
	return st
}

type peer struct {
	ID     string `json:"peer_id"`
	Name   string `json:"name"`
	OS     string `json:"os"`
	Mode   string `json:"mode"`
	Online bool   `json:"online"`
	Models []string
}

func peersOf(api string) []peer {
	var ps []peer
	nodetest.GetJSON(api+"/api/peers", &ps)
	return ps
}

func findPeer(ps []peer, name string) (peer, bool) {
	for _, p := range ps {
		if p.Name == name && p.Online {
			return p, true
		}
	}
	return peer{}, false
}

// complete asks api for a greedy completion of model.
func complete(api, model string, n int) (string, error) {
	text, _, _, err := decode(api, model, n)
	return text, err
}

type planDoc struct {
	Plan engine.Plan `json:"plan"`
}

// A Linux node and a Windows node in one network, both on llama.cpp built
// from the same source: requests cross in both directions (federation),
// then the Windows node lends its memory as an RPC worker and the Linux
// head splits the model over it, with the same greedy text as one process.
// Both sides show the other's operating system.
func TestMixedPool(t *testing.T) {
	Need(t)
	srv, b := windowsReleases(t)
	lb := runtimesBinaries(t, "linux")
	if _, err := srv.AddBuild(lb.Version, "linux", lb.Dir); err != nil {
		t.Fatal(err)
	}
	if lb.Version != b.Version {
		t.Fatalf("the Linux build is %s, the Windows one %s: both come from one source", lb.Version, b.Version)
	}
	m := testModel(t)
	// Two names for the one model: what each side serves.
	winModel := filepath.Join(filepath.Dir(m.Path), "win-stories.gguf")
	linModel := filepath.Join(filepath.Dir(m.Path), "lin-stories.gguf")
	for _, p := range []string{winModel, linModel} {
		if err := os.Link(m.Path, p); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := netmesh.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	mesh := []string{"--token", tok, "--no-dht", "--no-mdns", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--releases", srv.URL, "--llama-version", b.Version}

	lin := startLinux(t, append(mesh, "--name", "penguin", "--model", linModel, "--share", "server", "--split", "all", "--llama-cache", t.TempDir())...)
	WaitFor(t, "the Linux node's model", 3*time.Minute, func() bool {
		st := lin.Status(t)
		return st.Model != nil && st.Model.Ready && len(st.P2PAddrs) > 0
	})
	boot := lin.Status(t).P2PAddrs[0]
	win := StartNode(t, t.TempDir(), append(mesh, "--name", "gamer", "--model", WinPath(winModel), "--share", "server", "--bootstrap", boot)...)
	win.WaitStatus(t, "the Windows node's model", 4*time.Minute, modelReady)

	// Each sees the other, and its operating system.
	WaitFor(t, "each node seeing the other's model", 2*time.Minute, func() bool {
		w, ok1 := findPeer(peersOf(lin.API), "gamer")
		l, ok2 := findPeer(peersOf(win.API), "penguin")
		return ok1 && ok2 && len(w.Models) > 0 && len(l.Models) > 0
	})
	w, _ := findPeer(peersOf(lin.API), "gamer")
	l, _ := findPeer(peersOf(win.API), "penguin")
	if w.OS != "windows" || l.OS != "linux" {
		t.Errorf("/api/peers: the Windows node shows as %q, the Linux node as %q", w.OS, l.OS)
	}

	want := enginetest.StoriesPrefix
	for _, c := range []struct{ name, api, model string }{
		{"Linux asks Windows", lin.API, "win-stories"},
		{"Windows asks Linux", win.API, "lin-stories"},
	} {
		text, err := complete(c.api, c.model, 24)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if m.Stories && !strings.HasPrefix(strings.TrimSpace(text), want) {
			t.Errorf("%s: %q, want %q…", c.name, text, want)
		}
	}
	// The ledgers name the other side's operating system.
	var usage struct {
		Peers []struct {
			Name string `json:"name"`
			OS   string `json:"os"`
		} `json:"peers"`
	}
	if err := nodetest.GetJSON(lin.API+"/api/usage", &usage); err != nil {
		t.Fatal(err)
	}
	if len(usage.Peers) != 1 || usage.Peers[0].OS != "windows" {
		t.Errorf("the Linux ledger: %+v", usage.Peers)
	}

	// The Windows node lends as a worker: the Linux head splits over it.
	single := singleText(t, lb, m.Path)
	if err := nodetest.PostJSON(win.API+"/api/share", `{"mode":"worker"}`, nil); err != nil {
		t.Fatal(err)
	}
	var d planDoc
	WaitFor(t, "the Windows worker in the Linux head's plan", 2*time.Minute, func() bool {
		d = planDoc{}
		if nodetest.GetJSON(lin.API+"/api/plan", &d) != nil {
			return false
		}
		for _, n := range d.Plan.Nodes {
			if n.Name == "gamer" && n.Layers > 0 {
				st := lin.Status(t)
				return st.Model != nil && st.Model.Ready
			}
		}
		return false
	})
	t.Logf("plan:\n%s", d.Plan.String())
	got, err := complete(lin.API, "lin-stories", 32)
	if err != nil {
		t.Fatal(err)
	}
	if got != single {
		t.Errorf("split over the Windows worker = %q, want %q (one process)", got, single)
	}
}

// singleText is the greedy text of one llama-server of the Linux build.
func singleText(t *testing.T, b runtimestest.Build, model string) string {
	t.Helper()
	rt, err := (runtimes.Build{Version: b.Version, Backend: runtimes.BackendCPU, Source: runtimes.SourceRelease, Dir: b.Dir}).Runtime()
	if err != nil {
		t.Fatal(err)
	}
	return enginetest.Complete(t, enginetest.Server(t, rt, engine.ServerSpec{Model: model}), 32)
}
