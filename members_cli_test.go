package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mudler/edgevpn/pkg/node"

	"github.com/potluck-gpu/potluck/internal/nodetest"
)

// potluckCmd runs a potluck subcommand and returns its output.
func potluckCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(nodetest.Binary(t), args...).CombinedOutput()
	return string(out), err
}

// `potluck token new` makes a network this computer owns; its node lists
// the members, and `potluck members remove` removes one. The token comes
// from a 0600 file; a file others can read is refused, and --token on the
// command line is warned about.
func TestMembersCommands(t *testing.T) {
	ownerDir := t.TempDir()
	token, err := potluckCmd(t, "token", "new", "--data-dir", ownerDir)
	if err != nil {
		t.Fatalf("token new: %v\n%s", err, token)
	}
	tokenLine := strings.SplitN(token, "\n", 2)[0]
	if _, err := os.Stat(filepath.Join(ownerDir, "network_owner.key")); err != nil {
		t.Fatalf("token new kept no owner key: %v", err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(tokenLine+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := potluckCmd(t, "run", "--data-dir", t.TempDir(), "--token-file", tokenFile); err == nil || !strings.Contains(out, "chmod 600") {
		t.Errorf("a token file others can read was accepted: %v\n%s", err, out)
	}
	if err := os.Chmod(tokenFile, 0o600); err != nil {
		t.Fatal(err)
	}
	a := startPotluck(t, "--data-dir", ownerDir, "--name", "alpha", "--token-file", tokenFile,
		"--no-dht", "--no-mdns", "--p2p-listen", "/ip4/127.0.0.1/tcp/0")
	boot := a.meshStatus(t).P2PAddrs[0]
	b := startPotluck(t, append(meshArgs(tokenLine, "--bootstrap", boot), "--name", "beta")...)
	aID := a.meshStatus(t).PeerID
	b.waitPeers(t, "alpha", 20*time.Second, func(ps []peerDoc) bool { return onlineIDs(ps)[aID] })
	if strings.Contains(a.Logs.String(), "process list") || !strings.Contains(b.Logs.String(), "process list") {
		t.Errorf("the warning about --token belongs to beta only")
	}

	api := strings.TrimPrefix(a.API, "http://")
	var out string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		out, err = potluckCmd(t, "members", "--api", api)
		if err == nil && strings.Contains(out, "beta") && strings.Contains(out, "alpha (this computer, owner)") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil || !strings.Contains(out, "beta") || !strings.Contains(out, "online") || !strings.Contains(out, "owns the network") {
		t.Fatalf("members: %v\n%s", err, out)
	}
	if out, err := potluckCmd(t, "members", "remove", "--api", api, "nobody"); err == nil || !strings.Contains(out, "beta") {
		t.Errorf("removing an unknown member: %v\n%s", err, out)
	}
	if out, err := potluckCmd(t, "members", "remove", "--api", strings.TrimPrefix(b.API, "http://"), "alpha"); err == nil || !strings.Contains(out, "only the computer that created this network") {
		t.Errorf("a member that is not the owner removed one: %v\n%s", err, out)
	}
	out, err = potluckCmd(t, "members", "remove", "--api", api, "beta")
	if err != nil || !strings.Contains(out, "Removed beta") {
		t.Fatalf("members remove: %v\n%s", err, out)
	}
	b.WaitStatus(t, "beta told it was removed", func(st map[string]any) bool {
		ws, _ := st["warnings"].([]any)
		for _, w := range ws {
			if m, _ := w.(map[string]any); m["code"] == "removed" {
				return true
			}
		}
		return false
	})
	out, _ = potluckCmd(t, "members", "--api", api)
	if !strings.Contains(out, "removed") {
		t.Errorf("members after removal:\n%s", out)
	}
}

// A network whose token EdgeVPN made has no owner: nobody can remove its
// members, and the command says why.
func TestMembersRemoveNeedsAnOwnedNetwork(t *testing.T) {
	tok := node.GenerateNewConnectionData().Base64()
	a := startPotluckEnv(t, []string{"POTLUCK_P2P_TOKEN=" + tok}, "--no-dht", "--no-mdns", "--p2p-listen", "/ip4/127.0.0.1/tcp/0")
	a.meshStatus(t)
	out, err := potluckCmd(t, "members", "remove", "--api", strings.TrimPrefix(a.API, "http://"), "someone")
	if err == nil || !strings.Contains(out, "only a network Potluck created can remove members") {
		t.Errorf("remove on an EdgeVPN network: %v\n%s", err, out)
	}
}
