package lab_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/bench/fig"
	"github.com/potluck-gpu/potluck/lab"
	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/nodestate"
)

// Figures of the internet scenario.
var (
	figJoinInternet = fig.Figure{Section: "stress", Name: "join with an internet invite", Unit: "s", Target: "p99 <= 5 s",
		Note: "from starting a home node behind NAT with a member's invite until it and every member see each other online"}
	figPunch = fig.Figure{Section: "stress", Name: "hole punch between two endpoint-independent NATs", Unit: "s",
		Note: "from the second one's start until their connection is direct"}
	figRelayLost = fig.Figure{Section: "stress", Name: "relay loss noticed", Unit: "s",
		Note: "from killing the relaying member until the relayed member says it lost its relay"}
	figRelayBack = fig.Figure{Section: "stress", Name: "relay back after the relaying member restarts", Unit: "s",
		Note: "from restarting the relaying member until the relayed pair see each other through it again"}
	figReform = fig.Figure{Section: "stress", Name: "re-form after a restart of all", Unit: "s", Target: "p99 <= 2 s",
		Note: "from the last node's API answering until every node sees every other online"}
)

// stressInternet is one run of the internet scenario: a member with a public
// address (pub) and three homes behind NATs, two endpoint-independent
// (alice, carol), one symmetric (bob). They join one by one with pub's
// invite; alice and carol punch a hole, bob is relayed by pub; pub dies
// and comes back; then all restart at once.
func stressInternet(t *testing.T, ta *tally) {
	nw := lab.NewInternet(t, []lab.Site{
		{Name: "pub"},
		{Name: "alice", NAT: lab.NATEndpointIndependent},
		{Name: "bob", NAT: lab.NATSymmetric},
		{Name: "carol", NAT: lab.NATEndpointIndependent},
	}, lab.Options{})
	pub, alice, bob, carol := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2], nw.Nodes[3]
	all := nw.Nodes
	pub.Start()
	pub.PeerID()
	var invite string
	nw.Wait("pub's invite to carry its address", 30*time.Second, func() bool {
		var err error
		invite, err = pub.InviteToken()
		return err == nil && strings.Contains(inviteAddrs(t, invite), "/ip4/"+pub.IP+"/")
	})

	running := []*lab.Node{pub}
	for _, n := range []*lab.Node{alice, carol, bob} {
		t0 := time.Now()
		n.Start("--token", invite)
		running = append(running, n)
		nw.Wait(n.Name+" and the members to see each other", time.Minute, meshed(running))
		ta.slow(t, nw, figJoinInternet, since(t0), 5)
		t.Logf("%s joined in %.2fs", n.Name, since(t0))
	}
	conn := func(n *lab.Node, name string) string {
		p, _ := n.PeerByName(name)
		return p.Conn
	}
	took := nw.Wait("alice and carol hole-punched", 3*time.Minute, func() bool {
		return conn(alice, "carol") == netmesh.ConnHolePunched || conn(carol, "alice") == netmesh.ConnHolePunched
	})
	ta.add(figPunch, time.Since(carol.Started()).Seconds())
	t.Logf("hole punched %s after bob joined", took)
	nw.Wait("alice to reach bob through pub's relay", 2*time.Minute, func() bool {
		return conn(alice, "bob") == netmesh.ConnRelayed
	})

	t0 := time.Now()
	pub.Kill()
	nw.Wait("alice to say it lost its relay to bob", time.Minute, func() bool {
		return conn(alice, "bob") == netmesh.ConnRelayLost
	})
	ta.add(figRelayLost, since(t0))
	if p, _ := alice.PeerByName("carol"); !p.Online {
		t.Error("without pub, alice lost carol")
	}
	t0 = time.Now()
	pub.Restart()
	nw.Wait("pub back in the mesh", time.Minute, meshed(all))
	if waitUpTo(2*time.Minute, func() bool { return conn(alice, "bob") == netmesh.ConnRelayed }) {
		ta.add(figRelayBack, since(t0))
	} else {
		// Bob, behind a symmetric NAT, is cut off from alice without
		// pub's relay: a fault, not only a slow figure.
		why := fmt.Sprintf("alice reaches bob %q 2 minutes after pub came back", conn(alice, "bob"))
		ta.miss(t, figRelayBack, why)
		t.Error(why)
		nw.Dump(150)
	}

	for _, n := range all {
		n.Stop()
	}
	var wg sync.WaitGroup
	for _, n := range all {
		wg.Add(1)
		go func() { defer wg.Done(); n.Restart() }()
	}
	wg.Wait()
	t0 = time.Now()
	nw.Wait("the network to re-form", time.Minute, meshed(all))
	ta.slow(t, nw, figReform, since(t0), 2)
	t.Logf("re-formed in %.2fs", since(t0))
}

// waitUpTo polls cond until it holds or d passes, and says whether it held.
func waitUpTo(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// throttled checks cond at most once every d; in between it says false.
func throttled(d time.Duration, cond func() bool) func() bool {
	var last time.Time
	return func() bool {
		if time.Since(last) < d {
			return false
		}
		last = time.Now()
		return cond()
	}
}

// meshed says whether every node of ns sees every other online; it asks
// each node for its peers once.
func meshed(ns []*lab.Node) func() bool {
	return func() bool {
		for _, a := range ns {
			ps, err := a.Peers()
			if err != nil {
				return false
			}
			on := map[string]bool{}
			for _, p := range ps {
				if p.Online {
					on[p.Name] = true
				}
			}
			for _, b := range ns {
				if a != b && !on[b.Name] {
					return false
				}
			}
		}
		return true
	}
}

// Figures of the LAN scenario.
var (
	figJoinLAN = fig.Figure{Section: "stress", Name: "join with a LAN invite", Unit: "s", Target: "p99 <= 2 s",
		Note: "from starting a node with a member's invite until it and every member see each other online"}
	figCutSeen = fig.Figure{Section: "stress", Name: "cut noticed", Unit: "s",
		Note: "from unplugging a member's cable until the others list it offline (no packet says so: heartbeat expiry)"}
	figHeal = fig.Figure{Section: "stress", Name: "heal after a cut", Unit: "s",
		Note: "from plugging the cable back in until every member sees every other online"}
	figFrozen = fig.Figure{Section: "stress", Name: "back after a minute frozen", Unit: "s", Target: "p99 <= 10 s",
		Note: "a member stopped with SIGSTOP for 60 s, its link up: from waking it until every member sees every other online"}
	figLost = fig.Figure{Section: "stress", Name: "live members lost in cut and heal cycles", Unit: "members", Target: "0",
		Note: "a member that stayed plugged in but was listed offline by another at any moment of a cycle, summed per run"}
)

// stressLAN is one run of the LAN scenario: three machines join one by one
// with the first one's invite; then one is unplugged and plugged back in,
// STRESS_CYCLES times (4 by default), while the kernel writes back STRESS_WRITEBACK_MB of
// a file on another (1024 by default), and no live member may be listed
// offline meanwhile; then it is frozen for a minute and woken.
func stressLAN(t *testing.T, ta *tally) {
	nw := lab.New(t, 3, lab.Options{Hold: []int{1, 2}})
	first := nw.Nodes[0]
	first.PeerID()
	invite, err := first.InviteToken()
	if err != nil {
		t.Fatal(err)
	}
	running := []*lab.Node{first}
	for _, n := range nw.Nodes[1:] {
		t0 := time.Now()
		n.Start("--token", invite)
		running = append(running, n)
		nw.Wait(n.Name+" and the members to see each other", time.Minute, meshed(running))
		ta.slow(t, nw, figJoinLAN, since(t0), 2)
	}

	// Disk pressure: a big file through the page cache of the machine
	// that stays, while the third one is cut and healed.
	cut, steady, viewer := nw.Nodes[2], nw.Nodes[1], nw.Nodes[0]
	stopWrite := writeBack(t, steady.DataDir)
	defer stopWrite()
	lost := 0
	for range stressCycles(t) {
		watch := watchOnline(viewer, steady, cut)
		t0 := time.Now()
		cut.Cut()
		nw.Wait("the others to list the cut member offline", time.Minute, func() bool {
			p, _ := viewer.PeerByName(cut.Name)
			q, _ := steady.PeerByName(cut.Name)
			return !p.Online && !q.Online
		})
		ta.add(figCutSeen, since(t0))
		t0 = time.Now()
		cut.Heal()
		nw.Wait("the network to heal", time.Minute, meshed(nw.Nodes))
		ta.add(figHeal, since(t0))
		time.Sleep(2 * time.Second) // a few heartbeats settled
		if w := watch(); w != "" {
			lost++
			t.Errorf("a live member was listed offline: %s", w)
		}
	}
	ta.add(figLost, float64(lost))

	// A minute frozen (SIGSTOP, a laptop asleep with its link up), then
	// woken: the same process must be seen again within seconds.
	frozen := cut
	pid := frozen.PID()
	frozen.Pause()
	t0 := time.Now()
	nw.Wait("the others to list the frozen member offline", 30*time.Second, func() bool {
		p, _ := viewer.PeerByName(frozen.Name)
		return !p.Online
	})
	time.Sleep(time.Minute - time.Since(t0))
	frozen.Resume()
	t0 = time.Now()
	if waitUpTo(90*time.Second, meshed(nw.Nodes)) {
		ta.add(figFrozen, since(t0))
	} else {
		ta.miss(t, figFrozen, fmt.Sprintf("90 s after waking, %s", pairsOnline(nw.Nodes)))
		nw.Dump(150)
	}
	if frozen.PID() != pid {
		t.Errorf("the frozen node's process changed: %d, then %d", pid, frozen.PID())
	}
}

// watchOnline polls, until the returned function is called, whether a and
// b see each other online, and returns what it saw go wrong ("" if
// nothing).
func watchOnline(a, b, cut *lab.Node) func() string {
	done := make(chan struct{})
	var mu sync.Mutex
	var bad []string
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			for _, v := range [][2]*lab.Node{{a, b}, {b, a}} {
				if p, ok := v[0].PeerByName(v[1].Name); ok && !p.Online {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s listed %s offline at %s while %s was cut", v[0].Name, v[1].Name, time.Now().Format("15:04:05.000"), cut.Name))
					mu.Unlock()
				}
			}
		}
	}()
	return func() string {
		close(done)
		mu.Lock()
		defer mu.Unlock()
		if len(bad) == 0 {
			return ""
		}
		return fmt.Sprintf("%s (%d times)", bad[0], len(bad))
	}
}

// writeBack writes STRESS_WRITEBACK_MB (1024 by default; 0: none) of a
// file in dir through the page cache, over and over, until stopped, and
// removes it.
func writeBack(t *testing.T, dir string) func() {
	mb := 1024
	if s := os.Getenv("STRESS_WRITEBACK_MB"); s != "" {
		var err error
		if mb, err = strconv.Atoi(s); err != nil || mb < 0 {
			t.Fatalf("STRESS_WRITEBACK_MB=%q: want megabytes, 0 or more", s)
		}
	}
	if mb == 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	path := filepath.Join(dir, "writeback.bin")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			cmd := exec.CommandContext(ctx, "dd", "if=/dev/zero", "of="+path, "bs=1M", fmt.Sprintf("count=%d", mb), "conv=fsync")
			if out, err := cmd.CombinedOutput(); err != nil && ctx.Err() == nil {
				t.Logf("writeback: %v: %s", err, out)
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
		os.Remove(path)
	}
}

// Figures of the 50-member scenario.
var (
	figJoin50 = fig.Figure{Section: "stress", Name: "join a network of 49 members", Unit: "s", Target: "p99 <= 3 s",
		Note: "from starting the 50th machine with a member's invite until it sees the 49 online and they all see it; heartbeat 5 s, the default"}
	figConverge50 = fig.Figure{Section: "stress", Name: "49 members started at once see each other", Unit: "s",
		Note: "from the last API answering until every one of the 49 sees the 48 others online"}
	figIdle50 = fig.Figure{Section: "stress", Name: "idle traffic per node, 50 members", Unit: "KB/s", Target: "p99 <= 2 KB/s",
		Note: "bytes in and out of each machine's link over 3 minutes of idling (heartbeats, pings, mDNS), one sample per node"}
	figCPU50 = fig.Figure{Section: "stress", Name: "idle CPU per node, 50 members", Unit: "% of a core",
		Note: "user and system time of each potluck process over the same 3 minutes, one sample per node"}
)

// stress50 is the 50-member scenario, run once: 49 machines on one LAN
// with the default heartbeat, idle for 3 minutes, then a 50th joins with
// an invite.
func stress50(t *testing.T, ta *tally) {
	const n = 50
	nw := lab.New(t, n, lab.Options{Hold: []int{n - 1}, Env: []string{"POTLUCK_P2P_HEARTBEAT=5s"}, Ready: 3 * time.Minute})
	members := nw.Nodes[:n-1]
	t0 := time.Now()
	if waitUpTo(3*time.Minute, throttled(3*time.Second, meshed(members))) {
		ta.add(figConverge50, since(t0))
		// A start of 49 at once keeps announcing for about a minute: each
		// member answers each newcomer with a full heartbeat, and at this
		// size a heartbeat comes every 35 s. Idle is after that.
		time.Sleep(90 * time.Second)
	} else {
		ta.miss(t, figConverge50, fmt.Sprintf("after 3 min, %s; groups that see each other: %v", pairsOnline(members), groupsOnline(members)))
	}

	type sample struct {
		bytes, packets int64
		mdns, ticks    int64
		mesh           map[string]nodestate.ByteCount
	}
	read := func() []sample {
		out := make([]sample, len(members))
		for i, m := range members {
			out[i] = sample{mdns: multicastBytes(m.PID()), ticks: cpuTicks(m.PID())}
			out[i].bytes, out[i].packets = linkBytes(t, m.NS)
			if st, err := m.Status(); err == nil && st.MeshTraffic != nil {
				out[i].mesh = st.MeshTraffic.ByProtocol
			}
		}
		return out
	}
	// Longer than the slowest idle heartbeat (35 s at 50 members, 140 s
	// once idle, scale.go), so that each sample holds whole beats.
	const idle = 3 * time.Minute
	before := read()
	t0 = time.Now()
	time.Sleep(idle)
	after, d := read(), time.Since(t0).Seconds()
	var link, packets, mdns []float64
	perProto := map[string][2][]float64{} // in, out
	for i := range members {
		ta.add(figIdle50, float64(after[i].bytes-before[i].bytes)/1e3/d)
		ta.add(figCPU50, float64(after[i].ticks-before[i].ticks)/100/d*100) // clock ticks of 10 ms
		link = append(link, float64(after[i].bytes-before[i].bytes)/1e3/d)
		packets = append(packets, float64(after[i].packets-before[i].packets)/d)
		mdns = append(mdns, float64(after[i].mdns-before[i].mdns)/1e3/d)
		for p, c := range after[i].mesh {
			b := before[i].mesh[p]
			io := perProto[p]
			io[0] = append(io[0], float64(c.In-b.In)/1e3/d)
			io[1] = append(io[1], float64(c.Out-b.Out)/1e3/d)
			perProto[p] = io
		}
	}
	// Where the idle traffic goes, as medians over the members (KB/s):
	// the link's bytes, mDNS's (multicast), and each libp2p protocol's
	// payload in and out (the rest is TCP, encryption and multiplexing).
	parts := []string{fmt.Sprintf("link %.1f (%.1f packets/s)", median(link), median(packets)), fmt.Sprintf("mDNS %.2f", median(mdns))}
	for _, p := range slices.Sorted(maps.Keys(perProto)) {
		parts = append(parts, fmt.Sprintf("%s %.2f in, %.2f out", p, median(perProto[p][0]), median(perProto[p][1])))
	}
	t.Logf("idle traffic per member, KB/s (medians of %d): %s", len(members), strings.Join(parts, ", "))

	invite, err := members[0].InviteToken()
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.PeerID()
	}
	late := nw.Nodes[n-1]
	t0 = time.Now()
	late.Start("--token", invite)
	apiUp := since(t0)
	lateID := late.PeerID()
	// The 50th's own view is polled every 100 ms; the 49's, which cost a
	// request each, every 500 ms.
	seenBy := throttled(500*time.Millisecond, func() bool {
		for _, m := range members {
			if !m.OnlinePeers()[lateID] {
				return false
			}
		}
		return true
	})
	var sawAll float64 // when the 50th saw the 49
	if waitUpTo(2*time.Minute, func() bool {
		on := late.OnlinePeers()
		for _, id := range ids {
			if !on[id] {
				return false
			}
		}
		if sawAll == 0 {
			sawAll = since(t0)
		}
		return seenBy()
	}) {
		t.Logf("the 50th: API answered after %.1f s, saw the 49 after %.1f s, all saw it after %.1f s", apiUp, sawAll, since(t0))
		ta.add(figJoin50, since(t0))
	} else {
		ta.miss(t, figJoin50, fmt.Sprintf("after 2 min, %s", pairsOnline(nw.Nodes)))
	}
}

// pairsOnline says how many of the ordered pairs of ns see each other
// online.
func pairsOnline(ns []*lab.Node) string {
	on, all := 0, 0
	for _, a := range ns {
		seen := map[string]bool{}
		if ps, err := a.Peers(); err == nil {
			for _, p := range ps {
				seen[p.Name] = p.Online
			}
		}
		for _, b := range ns {
			if a != b {
				all++
				if seen[b.Name] {
					on++
				}
			}
		}
	}
	return fmt.Sprintf("%d of %d pairs see each other online", on, all)
}

// groupsOnline is the sizes of the groups of ns whose members see each
// other online, directly or through others, largest first: [50] is one
// mesh, [43 1 1 1 1 1 1] six members alone, [25 24] a LAN split in two.
func groupsOnline(ns []*lab.Node) []int {
	idx := map[string]int{}
	for i, n := range ns {
		idx[n.PeerID()] = i
	}
	parent := make([]int, len(ns))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		if parent[i] != i {
			parent[i] = find(parent[i])
		}
		return parent[i]
	}
	for i, n := range ns {
		for id := range n.OnlinePeers() {
			if j, ok := idx[id]; ok {
				parent[find(i)] = find(j)
			}
		}
	}
	sizes := map[int]int{}
	for i := range ns {
		sizes[find(i)]++
	}
	out := slices.Collect(maps.Values(sizes))
	slices.Sort(out)
	slices.Reverse(out)
	return out
}

// linkBytes is what namespace ns's lan0 received and sent so far, in
// bytes and in packets.
func linkBytes(t *testing.T, ns string) (bytes, packets int64) {
	out, err := exec.Command("ip", "-n", ns, "-j", "-s", "link", "show", "dev", "lan0").Output()
	if err != nil {
		t.Fatalf("link statistics of %s: %v", ns, err)
	}
	var v []struct {
		Stats struct {
			RX struct{ Bytes, Packets int64 } `json:"rx"`
			TX struct{ Bytes, Packets int64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &v); err != nil || len(v) != 1 {
		t.Fatalf("link statistics of %s: %v: %s", ns, err, out)
	}
	st := v[0].Stats
	return st.RX.Bytes + st.TX.Bytes, st.RX.Packets + st.TX.Packets
}

// multicastBytes is what the network namespace of process pid sent and
// received by multicast so far, IP headers included: on the lab's LAN,
// mDNS alone. 0 if it cannot be read.
func multicastBytes(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/netstat", pid))
	if err != nil {
		return 0
	}
	// Two lines per group: the names, then the values.
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "IpExt:" || len(values) != len(names) {
			continue
		}
		var sum int64
		for j, name := range names {
			if name == "InMcastOctets" || name == "OutMcastOctets" {
				v, _ := strconv.ParseInt(values[j], 10, 64)
				sum += v
			}
		}
		return sum
	}
	return 0
}

// cpuTicks is the user and system time of process pid so far, in clock
// ticks (10 ms); 0 if it cannot be read.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces: fields count from after its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// TestStressMesh is make stress: the mesh scenarios, STRESS_RUNS times each.
func TestStressMesh(t *testing.T) {
	n := stressRuns(t)
	ta := newTally()
	ta.run(t, "lan", n, stressLAN)
	ta.run(t, "internet", n, stressInternet)
	if os.Getenv("STRESS_FLAP") != "0" {
		ta.run(t, "flap", 1, stressFlap)
	}
	if os.Getenv("STRESS_MEMBERS50") != "0" {
		ta.run(t, "members50", 1, stress50)
	}
	ta.print(t, map[string]func(float64) bool{
		figJoinLAN.Name:      atMost(2),
		figFrozen.Name:       atMost(10),
		figLost.Name:         atMost(0),
		figJoinInternet.Name: atMost(5),
		figJoin50.Name:       atMost(3),
		figIdle50.Name:       atMost(2),
		figReform.Name:       atMost(2),
		figFlapBack.Name:     atMost(10),
		figFlapLost.Name:     atMost(0),
		figFlapHung.Name:     atMost(0),
		figFlapSilent.Name:   atMost(0),
	})
}
