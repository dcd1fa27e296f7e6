package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/netmesh"
)

// meshArgs are the flags of a loopback-only node of the mesh of token.
func meshArgs(token string, extra ...string) []string {
	return append([]string{"--token", token, "--no-dht", "--no-mdns", "--p2p-listen", "/ip4/127.0.0.1/tcp/0"}, extra...)
}

type peerDoc struct {
	PeerID     string `json:"peer_id"`
	Name       string `json:"name"`
	Mode       string `json:"mode"`
	Online     bool   `json:"online"`
	LastSeenMS int64  `json:"last_seen_ms"`
	Hardware   struct {
		Cores    int    `json:"cores"`
		RAMTotal uint64 `json:"ram_total"`
	} `json:"hardware"`
}

func (p *proc) peers(t *testing.T) []peerDoc {
	t.Helper()
	var ps []peerDoc
	if err := nodetest.GetJSON(p.API+"/api/peers", &ps); err != nil {
		t.Fatal(err)
	}
	return ps
}

// waitPeers polls /api/peers until ok accepts the list.
func (p *proc) waitPeers(t *testing.T, what string, within time.Duration, ok func([]peerDoc) bool) []peerDoc {
	t.Helper()
	deadline := time.Now().Add(within)
	var ps []peerDoc
	for time.Now().Before(deadline) {
		ps = nil
		if err := nodetest.GetJSON(p.API+"/api/peers", &ps); err == nil && ok(ps) {
			return ps
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: timed out waiting for %s; peers: %+v", p.API, what, ps)
	return nil
}

func onlineIDs(ps []peerDoc) map[string]bool {
	m := map[string]bool{}
	for _, p := range ps {
		if p.Online {
			m[p.PeerID] = true
		}
	}
	return m
}

// meshStatus is the part of /api/status about the mesh.
type meshStatus struct {
	PeerID      string   `json:"peer_id"`
	P2PAddrs    []string `json:"p2p_addrs"`
	PeersOnline int      `json:"peers_online"`
	InMesh      bool     `json:"in_mesh"`
	Share       string   `json:"share"`
}

func (p *proc) meshStatus(t *testing.T) meshStatus {
	t.Helper()
	var st meshStatus
	p.WaitStatus(t, "in the mesh", func(m map[string]any) bool { return m["in_mesh"] == true })
	if err := nodetest.GetJSON(p.API+"/api/status", &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// adminGetJSON is nodetest.GetJSON for an admin endpoint, which takes only JSON.
func adminGetJSON(url string, v any) error {
	return nodetest.GetJSON(url, v, "Content-Type", "application/json")
}

func newToken(t *testing.T) string {
	t.Helper()
	tok, err := netmesh.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Three processes joined by --bootstrap see each other, with hardware; a
// killed one goes offline within three heartbeats and keeps its peer id
// when it comes back.
func TestMeshOfThreeProcesses(t *testing.T) {
	token := newToken(t)
	hb := "POTLUCK_P2P_HEARTBEAT=1s"
	a := startPotluckEnv(t, []string{hb}, meshArgs(token, "--name", "alpha")...)
	as := a.meshStatus(t)
	if len(as.P2PAddrs) == 0 || !strings.Contains(as.P2PAddrs[0], "/p2p/"+as.PeerID) {
		t.Fatalf("p2p_addrs = %v, want full multiaddrs with /p2p/%s", as.P2PAddrs, as.PeerID)
	}
	boot := as.P2PAddrs[0]
	bDir := t.TempDir()
	b := startPotluckEnv(t, []string{hb}, append(meshArgs(token, "--name", "bravo", "--bootstrap", boot), "--data-dir", bDir)...)
	c := startPotluckEnv(t, []string{hb}, meshArgs(token, "--name", "charlie", "--bootstrap", boot)...)
	bs, cs := b.meshStatus(t), c.meshStatus(t)

	all := map[*proc][]string{a: {bs.PeerID, cs.PeerID}, b: {as.PeerID, cs.PeerID}, c: {as.PeerID, bs.PeerID}}
	for p, want := range all {
		ps := p.waitPeers(t, "the other two online, with their hardware", 20*time.Second, func(ps []peerDoc) bool {
			on := onlineIDs(ps)
			for _, peer := range ps {
				if peer.Name == "" || peer.Hardware.Cores == 0 {
					return false
				}
			}
			return on[want[0]] && on[want[1]]
		})
		for _, peer := range ps {
			if peer.Hardware.Cores == 0 || peer.Hardware.RAMTotal == 0 {
				t.Errorf("%s sees %s without hardware: %+v", p.API, peer.Name, peer)
			}
		}
	}

	// SIGKILL bravo: the others mark it offline within ~3 heartbeats.
	killed := time.Now()
	b.Cmd.Process.Signal(syscall.SIGKILL)
	for _, p := range []*proc{a, c} {
		p.waitPeers(t, "bravo offline", 8*time.Second, func(ps []peerDoc) bool {
			for _, peer := range ps {
				if peer.PeerID == bs.PeerID {
					return !peer.Online
				}
			}
			return false
		})
	}
	t.Logf("bravo offline after %s", time.Since(killed).Round(time.Millisecond))

	// Restart bravo on the same data dir: same peer id, online again.
	b2 := startPotluckEnv(t, []string{hb}, append(meshArgs(token, "--name", "bravo", "--bootstrap", boot), "--data-dir", bDir)...)
	if got := b2.meshStatus(t).PeerID; got != bs.PeerID {
		t.Errorf("restarted node has peer id %s, want %s", got, bs.PeerID)
	}
	a.waitPeers(t, "bravo back online", 20*time.Second, func(ps []peerDoc) bool { return onlineIDs(ps)[bs.PeerID] })
}

// The node API joins, reports and leaves a mesh; a bad token is a 400 that
// says what is wrong.
func TestNodeAPIJoinLeave(t *testing.T) {
	token := newToken(t)
	a := startPotluck(t, meshArgs(token)...)
	boot := a.meshStatus(t).P2PAddrs[0]
	b := startPotluck(t, "--no-dht", "--no-mdns", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", boot)

	for _, bad := range []string{"", "not a token", "aGVsbG8="} {
		body, _ := json.Marshal(map[string]string{"token": bad})
		resp, err := http.Post(b.API+"/api/join", "application/json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error struct{ Message string } }
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(e.Error.Message, "token") {
			t.Errorf("join %q: %s %q, want 400 about the token", bad, resp.Status, e.Error.Message)
		}
	}
	body, _ := json.Marshal(map[string]string{"token": "\n  " + token + "  \n"})
	resp, err := http.Post(b.API+"/api/join", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("join: %s", resp.Status)
	}
	aID := a.meshStatus(t).PeerID
	b.waitPeers(t, "alpha", 20*time.Second, func(ps []peerDoc) bool { return onlineIDs(ps)[aID] })

	var tok struct{ Token string }
	if err := nodetest.GetJSON(b.API+"/api/token", &tok); err == nil {
		t.Errorf("/api/token answered a request that was not JSON")
	}
	if err := adminGetJSON(b.API+"/api/token", &tok); err != nil {
		t.Errorf("/api/token: %v", err)
	}
	// The invite is the network's token with the addresses of b and of
	// the members it sees.
	invite, err := netmesh.ParseToken(tok.Token)
	joined, _ := netmesh.ParseToken(token)
	if err != nil || !invite.SameNetwork(joined) {
		t.Errorf("/api/token is not an invite to the network joined: %v", err)
	}
	for _, id := range []string{b.meshStatus(t).PeerID, aID} {
		if !strings.Contains(strings.Join(invite.Addrs(), " "), "/p2p/"+id) {
			t.Errorf("the invite lacks the addresses of %s: %q", id, invite.Addrs())
		}
	}
	resp, err = http.Post(b.API+"/api/leave", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var st meshStatus
	if err := nodetest.GetJSON(b.API+"/api/status", &st); err != nil || st.InMesh {
		t.Errorf("after leave: %+v %v", st, err)
	}
	if strings.Contains(b.Logs.String(), token) || strings.Contains(a.Logs.String(), token) {
		t.Error("a log contains the invite token")
	}
}

// meshMember is an in-process member of the mesh of token, joined through
// boot and up, stopped at the end of the test: a peer a test speaks for.
func meshMember(t *testing.T, token, boot, name string) *netmesh.Node {
	t.Helper()
	cfg := netmesh.DefaultConfig(token)
	cfg.MDNS, cfg.DisableDHT = false, true
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Bootstrap = []string{boot}
	cfg.Name = name
	cfg.HeartbeatInterval = time.Second
	n, err := netmesh.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); n.Close(); <-done })
	upCtx, upCancel := context.WithTimeout(ctx, 30*time.Second)
	defer upCancel()
	if err := n.Up(upCtx); err != nil {
		t.Fatal(err)
	}
	return n
}
