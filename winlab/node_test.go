//go:build linux

package winlab

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/runtimes/runtimestest"
)

func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := nodetest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// status is the part of /api/status these tests read.
type status struct {
	Name     string   `json:"name"`
	State    string   `json:"state"`
	Share    string   `json:"share"`
	PeerID   string   `json:"peer_id"`
	P2PAddrs []string `json:"p2p_addrs"`
	Hardware struct {
		OS string `json:"os"`
	} `json:"hardware"`
	Engine struct {
		Available    bool     `json:"available"`
		Error        string   `json:"error"`
		Release      string   `json:"release"`
		RPCProtocol  string   `json:"rpc_protocol"`
		Installed    []string `json:"installed"`
		Provisioning *struct {
			Status    string `json:"status"`
			Total     int64  `json:"total"`
			Completed int64  `json:"completed"`
		} `json:"provisioning"`
	} `json:"engine"`
	Model *struct {
		ID    string `json:"id"`
		Ready bool   `json:"ready"`
	} `json:"model"`
	Worker *struct {
		Release string `json:"release"`
	} `json:"worker"`
	Warnings []struct {
		Code, Message string
	} `json:"warnings"`
}

// WinNode is potluck.exe run under Wine.
type WinNode struct {
	*Proc
	API  string // http://127.0.0.1:PORT
	Data string // its data folder, on the host
}

func (n *WinNode) Status(t testing.TB) status {
	t.Helper()
	var st status
	if err := nodetest.GetJSON(n.API+"/api/status", &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// WaitStatus polls the node's status until ok accepts it.
func (n *WinNode) WaitStatus(t testing.TB, what string, d time.Duration, ok func(status) bool) status {
	t.Helper()
	var st status
	WaitFor(t, what+" (potluck.exe)", d, func() bool {
		st = status{}
		return nodetest.GetJSON(n.API+"/api/status", &st) == nil && ok(st)
	})
	return st
}

// StartNode runs `potluck.exe run` with its own data and llama.cpp
// folders and the API on a free port, and waits for the API.
func StartNode(t testing.TB, cache string, args ...string) *WinNode {
	t.Helper()
	addr := freeAddr(t)
	data := t.TempDir()
	all := append([]string{"run", "--api", addr, "--data-dir", WinPath(data), "--llama-cache", WinPath(cache),
		"--threads", "2", "--ctx-size", "512", "--log-level", "debug"}, args...)
	p := Start(t, Exe(t), Options{Marker: addr, Env: []string{"POTLUCK_P2P_DISABLE_PORT_MAP=1"}}, all...)
	n := &WinNode{Proc: p, API: "http://" + addr, Data: data}
	WaitFor(t, "the API of potluck.exe", 90*time.Second, func() bool {
		select {
		case <-p.proc.Exited():
			t.Fatalf("potluck.exe ended before its API answered:\n%s", p.Logs.String())
		default:
		}
		var st status
		return nodetest.GetJSON(n.API+"/api/status", &st) == nil
	})
	return n
}

// windowsReleases serves the Windows build of node-llama-cpp's llama.cpp
// as the official release archives.
func windowsReleases(t *testing.T) (*runtimestest.Server, runtimestest.Build) {
	t.Helper()
	b := runtimesBinaries(t, "windows")
	srv := runtimestest.New(t)
	if _, err := srv.AddBuild(b.Version, "windows", b.Dir); err != nil {
		t.Fatal(err)
	}
	return srv, b
}

func runtimesBinaries(t *testing.T, goos string) runtimestest.Build {
	t.Helper()
	return runtimestest.Binaries(t, goos)
}

func modelReady(st status) bool { return st.Model != nil && st.Model.Ready }

// testModel is enginetest's model, copied where Wine sees it (/tmp).
func testModel(t *testing.T) enginetest.Model {
	t.Helper()
	m := enginetest.TestModel(t)
	data, err := os.ReadFile(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	m.Path = filepath.Join(t.TempDir(), filepath.Base(m.Path))
	if err := os.WriteFile(m.Path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return m
}

// The first run on Windows: potluck.exe fetches the llama.cpp archive for
// the machine, checks it and serves the model, with the same greedy text
// as anywhere; it stops cleanly on a console control event and through
// the API, leaving no llama-server.exe behind, and a hard kill takes its
// children with it (the Job Object).
func TestWindowsNodeServes(t *testing.T) {
	Need(t)
	srv, b := windowsReleases(t)
	m := testModel(t)
	cache := t.TempDir()
	args := []string{"--model", WinPath(m.Path), "--releases", srv.URL, "--llama-version", b.Version}

	start := time.Now()
	n := StartNode(t, cache, args...)
	var sawProgress bool
	st := n.WaitStatus(t, "the model served", 4*time.Minute, func(st status) bool {
		if p := st.Engine.Provisioning; p != nil && p.Total > 0 {
			sawProgress = true
		}
		return modelReady(st)
	})
	t.Logf("potluck.exe served %s %v after it started (llama.cpp fetched and checked)", st.Model.ID, time.Since(start).Round(time.Millisecond))
	// Wine's WMI cannot list GPUs: the Vulkan build, which has the CPU
	// backend too, is the choice then.
	if st.Hardware.OS != "windows" || st.Engine.Release != b.Version || !slices.Contains(st.Engine.Installed, b.Version+" (vulkan)") {
		t.Errorf("status: os %q, engine %+v", st.Hardware.OS, st.Engine)
	}
	if _, err := os.Stat(filepath.Join(cache, "v"+b.Version+"-vulkan", "llama-server.exe")); err != nil {
		t.Errorf("the build is not where it belongs: %v", err)
	}
	if !slices.ContainsFunc(st.Warnings, func(w struct{ Code, Message string }) bool { return w.Code == "gpu-list" }) {
		t.Errorf("no warning that the GPUs could not be listed: %+v", st.Warnings)
	}
	t.Logf("progress seen in the status while fetching: %v", sawProgress)
	text := enginetest.Complete(t, n.API, 24)
	if m.Stories && !strings.HasPrefix(strings.TrimSpace(text), enginetest.StoriesPrefix) {
		t.Errorf("completion = %q, want %q…", text, enginetest.StoriesPrefix)
	}

	// A console control event (Ctrl+C).
	n.Interrupt(t)
	if !n.Wait(60 * time.Second) {
		t.Fatal("potluck.exe did not stop within 60 s of Ctrl+C")
	}
	if code, left := n.ExitCode(), n.Left(); code != 0 || left != "" {
		t.Errorf("after Ctrl+C: exit code %d, left running: %q", code, left)
	}

	// Again: nothing to fetch; stopped through the API.
	served := srv.Served()
	n = StartNode(t, cache, args...)
	n.WaitStatus(t, "the model served again", 2*time.Minute, modelReady)
	if srv.Served() != served {
		t.Errorf("the second start fetched %d bytes again", srv.Served()-served)
	}
	if err := nodetest.PostJSON(n.API+"/api/quit", "{}", nil); err != nil {
		t.Fatal(err)
	}
	if !n.Wait(60 * time.Second) {
		t.Fatal("potluck.exe did not stop within 60 s of POST /api/quit")
	}
	if code, left := n.ExitCode(), n.Left(); code != 0 || left != "" {
		t.Errorf("after /api/quit: exit code %d, left running: %q", code, left)
	}

	// A hard kill: the Job Object ends llama-server.exe with Potluck.
	n = StartNode(t, cache, args...)
	n.WaitStatus(t, "the model served a third time", 2*time.Minute, modelReady)
	if err := syscall.Kill(n.PID(t), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !n.Wait(60 * time.Second) {
		t.Fatal("the run did not end after potluck.exe was killed")
	}
	if left := n.Left(); left != "" {
		t.Errorf("potluck.exe killed hard left running: %q", left)
	}
}
