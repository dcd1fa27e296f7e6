package main

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/settings"
)

func warningCodes(st map[string]any) []string {
	var out []string
	ws, _ := st["warnings"].([]any)
	for _, w := range ws {
		if m, ok := w.(map[string]any); ok {
			out = append(out, m["code"].(string)+": "+m["message"].(string))
		}
	}
	return out
}

func hasWarning(st map[string]any, code string) bool {
	for _, w := range warningCodes(st) {
		if strings.HasPrefix(w, code+":") {
			return true
		}
	}
	return false
}

// Saved state fails safe: a saved "share as server" with no model to serve
// starts with sharing off and says why; a share change that fails leaves
// the status as it was; and a saved network that cannot be reached at start
// is tried again, never replaced by a new one.
func TestSavedStateFailsSafe(t *testing.T) {
	m := enginetest.TestModel(t)
	token := newToken(t)
	dir := t.TempDir()
	env := []string{"POTLUCK_P2P_HEARTBEAT=1s"}

	p := startPotluckEnv(t, env, meshArgs(token, "--data-dir", dir, "--model", m.Path, "--share", "server")...)
	p.WaitStatus(t, "serving and sharing", func(st map[string]any) bool { return st["share"] == "server" && modelReady(st) })
	p.stop(t)

	// No --model now: the saved "server" cannot run.
	p = startPotluckEnv(t, env, "--data-dir", dir, "--no-dht", "--no-mdns", "--p2p-listen", "/ip4/127.0.0.1/tcp/0")
	st := p.WaitStatus(t, "sharing off, with the reason", func(st map[string]any) bool {
		return st["share"] == "off" && st["in_mesh"] == true && hasWarning(st, "saved-share")
	})
	t.Logf("warnings: %q", warningCodes(st))

	// A share change that fails leaves the status as it was.
	resp, err := http.Post(p.API+"/api/share", "application/json", strings.NewReader(`{"mode":"server"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		t.Error("sharing as a server with no model succeeded")
	}
	if st := p.WaitStatus(t, "status", func(map[string]any) bool { return true }); st["share"] != "off" {
		t.Errorf("after a failed share change the status says %v", st["share"])
	}
	p.stop(t)

	// The saved network's port is taken: the node cannot rejoin. It must
	// keep the saved token, start no network of its own, and rejoin once
	// the port is free.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	before, err := settings.Load(dir)
	if err != nil || before.Token == "" {
		t.Fatalf("saved settings: %+v %v", before, err)
	}
	p = startPotluckEnv(t, env, "--data-dir", dir, "--no-dht", "--no-mdns", "--share", "worker",
		"--p2p-listen", "/ip4/127.0.0.1/tcp/"+strconv.Itoa(port))
	p.WaitStatus(t, "cannot reach your network", func(st map[string]any) bool {
		return st["in_mesh"] == false && hasWarning(st, "saved-mesh")
	})
	time.Sleep(2 * time.Second)
	after, _ := settings.Load(dir)
	if after.Token != before.Token {
		t.Fatal("a failed rejoin replaced the saved network with a new one")
	}
	if st := p.WaitStatus(t, "status", func(map[string]any) bool { return true }); st["in_mesh"] == true {
		t.Fatal("the node joined some network while its own was unreachable")
	}
	ln.Close()
	p.WaitStatus(t, "back in the saved network, sharing", func(st map[string]any) bool {
		return st["in_mesh"] == true && st["share"] == "worker" && !hasWarning(st, "saved-mesh")
	})
	if after, _ := settings.Load(dir); after.Token != before.Token {
		t.Error("the token changed after rejoining")
	}
	if _, err := os.Stat(filepath.Join(dir, "settings.json")); err != nil {
		t.Error(err)
	}
}
