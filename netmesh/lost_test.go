package netmesh

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// A peer cut off (its last connection closed, a redial failed) is offline
// at once. The heartbeat right after the last one heard may have been on
// its way through others: it is no sign of life. A later one, a new run of
// the peer, or a new connection brings it back at once; heartbeat expiry
// and removal work as before.
func TestRosterCut(t *testing.T) {
	const every = time.Second
	r := newRoster(every)
	events, stop := r.subscribe()
	defer stop()
	t0 := time.Now()
	a := NodeInfo{Name: "a"}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	observe := func(d time.Duration, boot string, seq uint64) {
		hb, raw := beat("peer-a", boot, seq, every, a)
		r.observe(hb, raw, at(d))
		r.sweep(at(d), time.Minute)
	}
	check := func(step string, online bool, want ...string) {
		t.Helper()
		if got := drain(events); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: events %v, want %v", step, got, want)
		}
		if p, ok := r.get("peer-a"); !ok || p.Online != online {
			t.Errorf("%s: present=%v online=%v, want online=%v", step, ok, p.Online, online)
		}
	}

	observe(0, "b1", 1)
	observe(time.Second, "b1", 2)
	check("joined", true, "joined a")
	if boot, seq, ok := r.lastBeat("peer-a"); !ok || boot != "b1" || seq != 2 {
		t.Fatalf("lastBeat = %q %d %v", boot, seq, ok)
	}

	if !r.cut("peer-a", "b1", 2) {
		t.Fatal("cut refused")
	}
	check("cut", false, "offline a")
	if r.cut("peer-a", "b1", 2) {
		t.Error("cut an offline peer again")
	}
	observe(1100*time.Millisecond, "b1", 3)
	check("the next heartbeat, late through others", false)
	observe(1200*time.Millisecond, "b1", 3)
	check("its replay", false)
	observe(2*time.Second, "b1", 4)
	check("a heartbeat sent after the cut", true, "joined a")

	// A heartbeat newer than the connection's last arrived while the
	// redial was under way: the peer lives on.
	observe(3*time.Second, "b1", 5)
	observe(3100*time.Millisecond, "b1", 6)
	observe(3200*time.Millisecond, "b1", 7)
	if r.cut("peer-a", "b1", 5) {
		t.Error("cut a peer heard from since its connection closed")
	}
	if r.cut("peer-a", "b0", 7) {
		t.Error("cut a peer that restarted since its connection closed")
	}
	check("no cut", true)

	if !r.cut("peer-a", "b1", 6) { // 7 may have been on its way
		t.Fatal("cut refused")
	}
	check("cut again", false, "offline a")
	observe(4*time.Second, "b2", 1)
	check("restarted", true, "joined a")

	r.cut("peer-a", "b2", 1)
	check("cut a third time", false, "offline a")
	if !r.revive("peer-a", at(5*time.Second)) {
		t.Fatal("revive refused")
	}
	check("connected again", true, "joined a")
	if r.revive("peer-a", at(5*time.Second)) {
		t.Error("revived an online peer")
	}

	r.sweep(at(9*time.Second), time.Minute)
	check("missed heartbeats", false, "offline a")
	if r.revive("peer-a", at(9*time.Second)) {
		t.Error("revived a peer offline for missed heartbeats: only a heartbeat brings it back")
	}
	r.sweep(at(5*time.Second+time.Minute+time.Millisecond), time.Minute)
	if _, ok := r.get("peer-a"); ok {
		t.Error("not removed after RemoveAfter")
	}
	if got := drain(events); strings.Join(got, ",") != "removed a" {
		t.Errorf("removal: events %v", got)
	}
}

// A redial to an address where nothing listens any more is turned away (on
// Windows too, whose error numbers differ), so the peer is offline within
// turnedAwayGrace; a dial with no address to try is not, and waits for the
// peer to connect back.
func TestRedialTurnedAwayByAClosedPort(t *testing.T) {
	tok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	h, gone := testHost(t, tok), testHost(t, tok)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	closed, err := multiaddr.NewMultiaddr(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = h.Connect(ctx, peer.AddrInfo{ID: gone.ID(), Addrs: []multiaddr.Multiaddr{closed}})
	if err == nil {
		t.Fatalf("connected to %s, where nothing listens", closed)
	}
	if !turnedAway(err) {
		t.Errorf("a dial to a closed port is not turned away: %v", err)
	}

	nowhere := testHost(t, tok).ID()
	err = h.Connect(ctx, peer.AddrInfo{ID: nowhere})
	if err == nil || turnedAway(err) {
		t.Errorf("a dial with no address: %v, turned away %v", err, turnedAway(err))
	}
}
