//go:build linux

package netmesh_test

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/netmesh/netmeshtest"
)

// TestIdleCost measures what three idle nodes with the default heartbeat cost:
// CPU, memory and mesh traffic. Traffic is read from the loopback counters, so
// it runs only alone in a network namespace:
//
//	unshare -n sh -c 'ip link set lo up; NETMESH_TEST_IDLE=30s go test -run IdleCost -v ./netmesh'
func TestIdleCost(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("NETMESH_TEST_IDLE"))
	if err != nil {
		t.Skip("needs NETMESH_TEST_IDLE=<duration> inside a network namespace")
	}
	nodes := netmeshtest.Cluster(t, 3, netmeshtest.WithHeartbeat(netmesh.DefaultHeartbeatInterval))
	netmeshtest.WaitConverged(t, nodes, 10*time.Second)
	for _, n := range nodes {
		n.SetInfo(func(i *netmesh.NodeInfo) { // a realistic announcement
			i.Hardware = []byte(`{"cpu":"AMD Ryzen 9 7950X","ram":68719476736,"gpus":[{"name":"NVIDIA GeForce RTX 4090","vram":25769803776}]}`)
			i.Models = []string{"qwen3-8b-q4_k_m.gguf"}
			i.Mode = "worker"
			i.MemoryOffered = 24 << 30
			i.Services = map[string]netmesh.ServiceInfo{"llama-rpc": {Version: "8.0.0"}}
		})
	}
	time.Sleep(3 * netmesh.DefaultHeartbeatInterval) // settle
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	lo0 := loopbackBytes(t)
	time.Sleep(d)
	lo1 := loopbackBytes(t)
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	t.Logf("per idle node over %v: %.3f%% of a core, %.0f B/s of mesh traffic; process max RSS %d MB (3 nodes)",
		d, 100*cpu.Seconds()/d.Seconds()/3, float64(lo1-lo0)/d.Seconds()/3, ru1.Maxrss/1024)
	for _, n := range nodes {
		for _, p := range n.Peers() {
			if !p.Online {
				t.Errorf("%s lost %s", n.Info().Name, p.Name)
			}
		}
	}
}

func loopbackBytes(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Skip(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[0] == "lo:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	t.Skip("no loopback counters")
	return 0
}
