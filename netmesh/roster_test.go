package netmesh

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func beat(id, boot string, seq uint64, every time.Duration, info NodeInfo) (heartbeat, []byte) {
	info.PeerID = id
	raw, _ := json.Marshal(info)
	return heartbeat{V: heartbeatVersion, ID: id, Boot: boot, Start: bootStart(boot), Seq: seq, EveryMS: every.Milliseconds(), Info: &info}, raw
}

// bootStart orders the test's boots by their names: "b1" before "b2".
func bootStart(boot string) int64 {
	var n int64
	for _, c := range boot {
		n = n*256 + int64(c)
	}
	return n
}

func drain(ch <-chan PeerEvent) []string {
	var out []string
	for {
		select {
		case ev := <-ch:
			out = append(out, ev.Type.String()+" "+ev.Peer.Name)
		default:
			return out
		}
	}
}

// Liveness depends only on when heartbeats arrived by the local clock; the
// table walks through join, update, stale replay, offline, return, removal.
func TestRosterLiveness(t *testing.T) {
	const every = time.Second
	r := newRoster(every)
	events, stop := r.subscribe()
	defer stop()
	t0 := time.Now()
	a := NodeInfo{Name: "a"}
	a2 := NodeInfo{Name: "a", Models: []string{"m"}}

	steps := []struct {
		name    string
		at      time.Duration
		beat    *NodeInfo
		boot    string
		seq     uint64
		want    []string
		online  bool
		present bool
	}{
		{name: "first heartbeat", at: 0, beat: &a, boot: "b1", seq: 1, want: []string{"joined a"}, online: true, present: true},
		{name: "same info", at: time.Second, beat: &a, boot: "b1", seq: 2, online: true, present: true},
		{name: "new info", at: 2 * time.Second, beat: &a2, boot: "b1", seq: 3, want: []string{"updated a"}, online: true, present: true},
		{name: "late replay of old info", at: 2*time.Second + 100*time.Millisecond, beat: &a, boot: "b1", seq: 2, online: true, present: true},
		{name: "3 heartbeats missed, not yet", at: 5 * time.Second, online: true, present: true},
		{name: "over 3.5 heartbeats missed", at: 5*time.Second + 700*time.Millisecond, want: []string{"offline a"}, online: false, present: true},
		{name: "replay of the last heartbeat after it went offline", at: 5*time.Second + 800*time.Millisecond, beat: &a2, boot: "b1", seq: 3, online: false, present: true},
		{name: "restarted (new boot, seq from 1)", at: 6 * time.Second, beat: &a, boot: "b2", seq: 1, want: []string{"joined a"}, online: true, present: true},
		{name: "replay from the previous run", at: 6*time.Second + 100*time.Millisecond, beat: &a2, boot: "b1", seq: 9, online: true, present: true},
		{name: "offline again", at: 10 * time.Second, want: []string{"offline a"}, online: false, present: true},
		{name: "replay from the previous run while offline", at: 10*time.Second + 100*time.Millisecond, beat: &a2, boot: "b1", seq: 10, online: false, present: true},
		{name: "removed after RemoveAfter", at: 6*time.Second + time.Minute + time.Millisecond, want: []string{"removed a"}, present: false},
	}
	for _, s := range steps {
		now := t0.Add(s.at)
		if s.beat != nil {
			hb, raw := beat("peer-a", s.boot, s.seq, every, *s.beat)
			r.observe(hb, raw, now)
		}
		r.sweep(now, time.Minute)
		got := drain(events)
		if strings.Join(got, ",") != strings.Join(s.want, ",") {
			t.Errorf("%s: events %v, want %v", s.name, got, s.want)
		}
		p, ok := r.get("peer-a")
		if ok != s.present || (ok && p.Online != s.online) {
			t.Errorf("%s: present=%v online=%v, want %v %v", s.name, ok, p.Online, s.present, s.online)
		}
		if ok && s.name == "late replay of old info" && len(p.Models) != 1 {
			t.Errorf("a replayed heartbeat overwrote newer info")
		}
		if ok && strings.HasPrefix(s.name, "replay from the previous run") && len(p.Models) != 0 {
			t.Errorf("%s: a heartbeat of an older run overwrote the info", s.name)
		}
	}
}

// A peer's own heartbeat interval decides when it is offline.
func TestRosterUsesSendersInterval(t *testing.T) {
	r := newRoster(time.Second)
	t0 := time.Now()
	hb, raw := beat("slow", "b", 1, 10*time.Second, NodeInfo{Name: "slow"})
	r.observe(hb, raw, t0)
	r.sweep(t0.Add(20*time.Second), time.Hour)
	if p, _ := r.get("slow"); !p.Online {
		t.Error("offline after 2 of its 10s heartbeats")
	}
	r.sweep(t0.Add(36*time.Second), time.Hour)
	if p, _ := r.get("slow"); p.Online {
		t.Error("online after missing 3.6 of its heartbeats")
	}
}

// A subscriber that never reads does not block the roster and keeps the most
// recent events.
func TestSlowSubscriberNeverBlocks(t *testing.T) {
	r := newRoster(time.Second)
	events, stop := r.subscribe()
	t0 := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 1000 {
			hb, raw := beat("p", "b", uint64(i+1), time.Second, NodeInfo{Name: "p", InFlight: i})
			r.observe(hb, raw, t0)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("producer blocked on a slow subscriber")
	}
	var last PeerEvent
	n := 0
	for len(events) > 0 {
		last = <-events
		n++
	}
	if n != subscriberBuffer {
		t.Errorf("buffered %d events, want %d", n, subscriberBuffer)
	}
	if last.Peer.InFlight != 999 {
		t.Errorf("last buffered event has InFlight %d, want the newest (999)", last.Peer.InFlight)
	}
	stop()
	stop()
	if _, ok := <-events; ok {
		t.Error("channel open after unsubscribe")
	}
	r.close()
	ch, _ := r.subscribe()
	if _, ok := <-ch; ok {
		t.Error("subscription after close is open")
	}
}

func TestPeerJSON(t *testing.T) {
	seen := time.UnixMilli(1_700_000_000_123)
	p := Peer{NodeInfo: NodeInfo{PeerID: "id", Name: "n", MemoryOffered: 5}, Online: true, LastSeen: seen, RTT: 1500 * time.Microsecond}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"peer_id":"id","name":"n","memory_offered":5,"online":true,"last_seen_ms":1700000000123,"rtt_ms":1.5}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

// EdgeVPN calls Fatal when mDNS has no multicast interface; it must only log.
func TestEdgeLoggerFatalOnlyLogs(t *testing.T) {
	var buf bytes.Buffer
	l := newEdgeLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), slog.LevelWarn)
	l.Fatal("no multicast interface")
	l.Fatalf("while starting %s", "mdns")
	l.Panic("boom")
	l.Info("chatty start-up detail")
	l.Debugf("noise %d", 1)
	l.Warnf("publish error: %s", "x")
	out := buf.String()
	for _, want := range []string{"no multicast interface", "while starting mdns", "boom", "publish error: x", "component=edgevpn"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "chatty") || strings.Contains(out, "noise 1") {
		t.Errorf("messages below the level were logged:\n%s", out)
	}
}

// Heartbeats without info keep a known peer alive and introduce an unknown
// one by its ID alone.
func TestRosterHeartbeatWithoutInfo(t *testing.T) {
	r := newRoster(time.Second)
	events, stop := r.subscribe()
	defer stop()
	t0 := time.Now()
	hb, raw := beat("a", "b", 1, time.Second, NodeInfo{Name: "a"})
	r.observe(hb, raw, t0)
	r.observe(heartbeat{V: heartbeatVersion, ID: "a", Boot: "b", Start: bootStart("b"), Seq: 2, EveryMS: 1000}, nil, t0.Add(3*time.Second))
	r.sweep(t0.Add(5*time.Second), time.Hour)
	if p, _ := r.get("a"); !p.Online || p.Name != "a" {
		t.Errorf("peer a = %+v after a heartbeat without info", p)
	}
	r.observe(heartbeat{V: heartbeatVersion, ID: "x", Boot: "b", Start: bootStart("b"), Seq: 1, EveryMS: 1000}, nil, t0)
	if p, ok := r.get("x"); !ok || p.PeerID != "x" || !p.Online {
		t.Errorf("peer x = %+v, %v", p, ok)
	}
	if got := drain(events); strings.Join(got, ",") != "joined a,joined " {
		t.Errorf("events %v", got)
	}
}

// A peer's MinRTT is the least of its last few round trips: one slow
// answer (a busy moment) does not move it, and old samples age out.
func TestRosterMinRTT(t *testing.T) {
	r := newRoster(time.Second)
	now := time.Now()
	hb, raw := beat("p1", "b1", 1, time.Second, NodeInfo{Name: "p"})
	r.observe(hb, raw, now)
	ms := func(v ...int) {
		for _, x := range v {
			r.pinged("p1", time.Duration(x)*time.Millisecond, now)
		}
	}
	get := func() Peer {
		p, ok := r.get("p1")
		if !ok {
			t.Fatal("peer missing")
		}
		return p
	}
	ms(4, 900)
	if p := get(); p.RTT != 900*time.Millisecond || p.MinRTT != 4*time.Millisecond {
		t.Fatalf("after 4 and 900 ms: RTT %v, MinRTT %v; want 900ms and 4ms", p.RTT, p.MinRTT)
	}
	ms(200, 200, 200, 200) // the 4 ms sample is now rttSamples old
	if p := get(); p.MinRTT != 200*time.Millisecond {
		t.Fatalf("MinRTT %v after %d slower samples; want 200ms", p.MinRTT, rttSamples)
	}
}

// A member that said it was leaving is offline at once, and its last
// heartbeats, handed on late by gossip, bring it back neither where it
// was known nor where it was not; its next run does.
func TestRosterLeaving(t *testing.T) {
	now := time.Now()
	known, newcomer := newRoster(time.Second), newRoster(time.Second)
	hb, raw := beat("A", "b1", 7, time.Second, NodeInfo{Name: "a"})
	known.observe(hb, raw, now)
	if !known.left("A", "b1", 7, now) {
		t.Fatal("an online member that left was not marked offline")
	}
	newcomer.left("A", "b1", 7, now)
	for _, r := range []*roster{known, newcomer} {
		for _, seq := range []uint64{6, 7} {
			hb, raw := beat("A", "b1", seq, time.Second, NodeInfo{Name: "a"})
			if fresh, _ := r.observe(hb, raw, now.Add(time.Second)); fresh && r == newcomer {
				t.Errorf("heartbeat %d, sent before leaving, taken as new", seq)
			}
			if p, ok := r.get("A"); ok && p.Online {
				t.Errorf("heartbeat %d, sent before leaving, brought the member back", seq)
			}
		}
		hb, raw := beat("A", "b2", 1, time.Second, NodeInfo{Name: "a"})
		r.observe(hb, raw, now.Add(2*time.Second))
		if p, ok := r.get("A"); !ok || !p.Online {
			t.Error("the member's next run is not online")
		}
	}
	if known.left("A", "b1", 7, now) {
		t.Error("a notice of an earlier run marked the next one offline")
	}
}
