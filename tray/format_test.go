package tray

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/icons"
	"github.com/potluck-gpu/potluck/nodestate"
)

func TestStatusLineAndIcon(t *testing.T) {
	ready := &nodestate.ModelStatus{ID: "stories260K", Ready: true}
	loading := &nodestate.ModelStatus{ID: "stories260K"}
	noLlama := nodestate.Warning{Code: "llama-not-found", Severity: nodestate.SeverityError, Message: "llama.cpp was not found: run `potluck engine install`"}
	tests := []struct {
		name string
		st   nodestate.Status
		busy bool
		line string
		icon icons.State
	}{
		{"fresh", nodestate.Status{State: nodestate.StateIdle}, false, "Not sharing", icons.Idle},
		{"in a mesh, not sharing", nodestate.Status{State: nodestate.StateIdle, InMesh: true, PeersOnline: 2}, false, "Not sharing · 2 peers", icons.Idle},
		{"sharing as shard", nodestate.Status{State: nodestate.StateSharing, Share: nodestate.ShareWorker, MemoryOffered: 12 << 30, InMesh: true, PeersOnline: 3}, false, "Sharing 12.0 GB as shard · 3 peers", icons.Sharing},
		{"sharing, one peer", nodestate.Status{State: nodestate.StateSharing, Share: nodestate.ShareServer, MemoryOffered: 512 << 20, InMesh: true, PeersOnline: 1}, false, "Sharing 512 MB as server · 1 peer", icons.Sharing},
		{"serving across", nodestate.Status{State: nodestate.StateServing, Model: ready, InMesh: true, PeersOnline: 2}, false, "Serving stories260K across 3 machines", icons.Sharing},
		{"serving, busy", nodestate.Status{State: nodestate.StateServing, Model: ready}, true, "Serving stories260K", icons.Busy},
		{"loading", nodestate.Status{State: nodestate.StateServing, Model: loading}, false, "Loading stories260K…", icons.Busy},
		{"joining", nodestate.Status{State: nodestate.StateJoining}, false, "Joining a network…", icons.Busy},
		{"busy but idle", nodestate.Status{State: nodestate.StateIdle}, true, "Not sharing", icons.Idle},
		{"error warning", nodestate.Status{State: nodestate.StateIdle, Warnings: []nodestate.Warning{noLlama}}, false, "llama.cpp was not found: run `potluck engine install`", icons.Error},
		{"error state", nodestate.Status{State: nodestate.StateError}, false, "Something went wrong: open the dashboard", icons.Error},
		{"info warning only", nodestate.Status{State: nodestate.StateIdle, Warnings: []nodestate.Warning{{Severity: nodestate.SeverityInfo, Message: "no peers"}}}, false, "Not sharing", icons.Idle},
	}
	for _, tc := range tests {
		if got := statusLine(tc.st); got != tc.line {
			t.Errorf("%s: statusLine = %q, want %q", tc.name, got, tc.line)
		}
		if got := iconState(tc.st, tc.busy); got != tc.icon {
			t.Errorf("%s: iconState = %q, want %q", tc.name, got, tc.icon)
		}
	}
	long := nodestate.Status{State: nodestate.StateError, Warnings: []nodestate.Warning{{Severity: nodestate.SeverityError, Message: "the model does not fit in the memory of the machines in this network, even split across all of them"}}}
	if got := []rune(statusLine(long)); len(got) != 70 || got[69] != '…' {
		t.Errorf("a long warning is not shortened: %q", string(got))
	}
}

func TestCheckToken(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"", "", errTokenEmpty},
		{" \n\t", "", errTokenEmpty},
		{"not a token", "", errTokenBad},
		{"https://example.com/invite", "", errTokenBad},
		{"aGVsbG8=", "", errTokenBad}, // "hello": text, but not YAML
		{validToken, validToken, nil},
		{"  " + validToken[:10] + "\r\n" + validToken[10:] + "\n", validToken, nil},
		{string(make([]byte, maxTokenLen+1)), "", errTokenBad},
	} {
		got, err := checkToken(tc.in)
		if got != tc.want || err != tc.err {
			t.Errorf("checkToken(%.20q…) = %.20q, %v; want %.20q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestDescribeHardware(t *testing.T) {
	report := map[string]any{
		"cpu":    map[string]any{"model": "AMD Ryzen 7", "logical_cores": 16},
		"memory": map[string]any{"total_bytes": 32 << 30},
		"gpus": []any{
			map[string]any{"vendor": "NVIDIA", "name": "RTX 3090", "vram_total": 24 << 30, "vram_known": true},
			map[string]any{"vendor": "Intel", "name": "UHD 770"},
		},
	}
	want := []string{"CPU: AMD Ryzen 7 (16 threads)", "Memory: 32.0 GB", "GPU: NVIDIA RTX 3090, 24.0 GB VRAM", "GPU: Intel UHD 770"}
	if got := describeHardware(report); !slices.Equal(got, want) {
		t.Errorf("describeHardware = %q, want %q", got, want)
	}
	if got := describeHardware(map[string]any{"report": report}); !slices.Equal(got, want) {
		t.Errorf("describeHardware(wrapped) = %q", got)
	}
	if got := describeHardware(map[string]any{"cpu": map[string]any{"model": "M2", "logical_cores": 8}}); !slices.Equal(got, []string{"CPU: M2 (8 threads)", "GPU: none found"}) {
		t.Errorf("no GPUs: %q", got)
	}
	if got := describeHardware(nil); got != nil {
		t.Errorf("nil: %q", got)
	}
	if got := describeHardware("something else"); got != nil {
		t.Errorf("a string: %q", got)
	}
}

func TestRows(t *testing.T) {
	peers := []nodestate.Peer{
		{ID: "b", Name: "bob", Online: false, LastSeenMS: 90_000},
		{ID: "z", Name: "zed", Online: true, Mode: nodestate.ShareWorker, MemoryOffered: 8 << 30},
		{ID: "a", Name: "alice", Online: true, Mode: nodestate.ShareServer, Models: []string{"m1", "m2"}, RTTMS: 3.4, Version: "0.2", Conn: "hole-punched", Transport: "tcp"},
	}
	rows := peerRows(peers)
	var names []string
	for _, r := range rows {
		names = append(names, r[0])
	}
	if !slices.Equal(names, []string{"alice", "zed", "bob"}) {
		t.Errorf("peer order %q", names)
	}
	if want := []string{"alice", "Full server", "0 GB", "yes", "direct (hole-punched), tcp", "3 ms", "0.2", "m1, m2"}; !slices.Equal(rows[0], want) {
		t.Errorf("alice row %q, want %q", rows[0], want)
	}
	if rows[2][3] != "no, seen 1m30s ago" {
		t.Errorf("offline peer: %q", rows[2][3])
	}
	split := &nodestate.ModelStatus{ID: "big", Ready: true,
		Holders: []nodestate.Holder{{Name: "me", Device: "CPU", Local: true, Layers: 2, Bytes: 1 << 30, Share: 0.25},
			{Name: "zed", Device: "CUDA0", Layers: 3, Bytes: 3 << 29, Share: 0.75}},
		TokensPerSecond: 41.6,
		Excluded:        []string{"old: speaks llama.cpp RPC 7.0.0, this node 8.0.0"}}
	lines := routingLines(nodestate.Status{Model: split}, peers)
	if want := []string{"big: on me CPU 2 layers (1.0 GB, 25% of the time), zed CUDA0 3 layers (1.5 GB, 75% of the time); predicted 42 tok/s (ready)",
		"  left out: old: speaks llama.cpp RPC 7.0.0, this node 8.0.0", "m1: served by alice", "m2: served by alice"}; !slices.Equal(lines, want) {
		t.Errorf("routing %q, want %q", lines, want)
	}
	// Served here alone: the workers are listed as available.
	lines = routingLines(nodestate.Status{Model: &nodestate.ModelStatus{ID: "big", Ready: true, Holders: []nodestate.Holder{{Name: "me", Device: "CPU", Local: true, Layers: 5}}}}, peers)
	if want := []string{"big: served here (ready)", "m1: served by alice", "m2: served by alice", "Shard workers ready: zed (8.0 GB)"}; !slices.Equal(lines, want) {
		t.Errorf("routing %q, want %q", lines, want)
	}
	if got := routingLines(nodestate.Status{}, nil); !slices.Equal(got, []string{"No model is served yet."}) {
		t.Errorf("routing with nothing: %q", got)
	}
	// Models loaded on request, and until when.
	now := time.Date(2026, 12, 6, 14, 0, 0, 0, time.Local)
	soon, later := now.Add(30*time.Second), now.Add(5*time.Minute)
	got := loadedLines([]nodestate.LoadedModel{
		{Name: "tiny", Ready: true, ExpiresAt: &later},
		{Name: "busy", Ready: true, InFlight: 2, ExpiresAt: &soon},
		{Name: "kept", Ready: true},
		{Name: "big", Detail: "loading: 1 GB of about 3 GB sent to the workers"},
	}, now)
	if want := []string{"tiny: loaded on request, ready, until 14:05", "busy: loaded on request, serving, until 14:00:30",
		"kept: loaded on request, ready, stays loaded", "big: loaded on request, loading: 1 GB of about 3 GB sent to the workers, stays loaded"}; !slices.Equal(got, want) {
		t.Errorf("loaded %q, want %q", got, want)
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{formatBytes(0), "0 GB"}, {formatBytes(300 << 20), "300 MB"}, {formatBytes(12 << 30), "12.0 GB"},
		{formatUptime(-1), "0s"}, {formatUptime(42), "42s"}, {formatUptime(300), "5m"},
		{formatUptime(3*3600 + 7*60), "3h07m"}, {formatUptime(2*86400 + 4*3600), "2d04h"},
		{formatDuration(42 * time.Millisecond), "42 ms"}, {formatDuration(1500 * time.Millisecond), "1.5 s"},
		{formatDuration(90 * time.Second), "1m30s"}, {formatDuration(2*time.Hour + 5*time.Minute), "2h05m"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestTrayVariant(t *testing.T) {
	for _, tc := range []struct {
		desktop string
		dark    bool
		want    icons.Variant
	}{
		{"", false, icons.Light}, {"", true, icons.Dark}, {"KDE", false, icons.Light},
		{"ubuntu:GNOME", false, icons.Dark}, {"GNOME", true, icons.Dark}, {"XFCE", true, icons.Dark},
	} {
		if got := trayVariant(tc.desktop, tc.dark); got != tc.want {
			t.Errorf("trayVariant(%q, %v) = %s, want %s", tc.desktop, tc.dark, got, tc.want)
		}
	}
}

func TestUsageRows(t *testing.T) {
	u := nodestate.Usage{Self: "me", ShareLimit: 500_000, Gave: nodestate.UsageWindows{All: 1_200_000}, Used: nodestate.UsageWindows{All: 300_000},
		Peers: []nodestate.PeerUsage{{ID: "b", Name: "bob", Gave: nodestate.UsageWindows{Today: 950, Week: 12_300, All: 1_200_000}, Used: nodestate.UsageWindows{All: 300_000}}}}
	if got, want := usageRows(u), [][]string{{"bob", "950", "12.3 k", "1.2 M", "0", "0", "300 k"}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rows %q, want %q", got, want)
	}
	if got := usageLine(u); got != "You served 1.2 M tokens to friends and used 300 k (all time). Each friend may use 500 k tokens a day of this computer's model." {
		t.Errorf("line %q", got)
	}
	if got := usageLine(nodestate.Usage{}); !strings.Contains(got, "no network") {
		t.Errorf("outside a network: %q", got)
	}
}
