package netmesh_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/netmesh"
	"github.com/potluck-gpu/potluck/netmesh/netmeshtest"
)

// Members in the mesh seldom ask the LAN for members (3 members, each
// once in 1.5 to 4.5 minutes), so a quiet LAN carries almost no mDNS; a
// newcomer's own question is still answered, and it joins by mDNS alone.
func TestMDNSMembersInTheMeshSeldomAsk(t *testing.T) {
	mdnsEnv(t, "multicast")
	netmeshtest.CheckLeaks(t)
	tok, err := netmesh.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	lanOnly := func(name string) netmeshtest.Option {
		return netmeshtest.WithConfig(func(i int, c *netmesh.Config) {
			c.MDNS, c.Bootstrap = true, nil
			if name != "" {
				c.Name = name
			}
		})
	}
	nodes := netmeshtest.Cluster(t, 3, netmeshtest.WithToken(tok), lanOnly(""))
	netmeshtest.WaitConverged(t, nodes, 10*time.Second)
	time.Sleep(2 * time.Second) // each looks once a second whether it is alone

	questions := countMDNSQuestions(t)
	time.Sleep(10 * time.Second)
	if n := questions.Load(); n != 0 {
		t.Errorf("3 members in the mesh asked the LAN %d times in 10 s; want none", n)
	}

	start := time.Now()
	late := netmeshtest.Cluster(t, 1, netmeshtest.WithToken(tok), lanOnly("late"))
	netmeshtest.WaitConverged(t, append(nodes, late...), 10*time.Second)
	t.Logf("a newcomer found the members by mDNS %v after its start", time.Since(start).Round(time.Millisecond))
}

// Two groups of one network on one LAN that formed apart, each through its
// own invite, and never asked the LAN while alone (as when the answers are
// lost in a burst), find each other: members in the mesh ask too, seldom.
func TestMDNSJoinsGroupsThatFormedApart(t *testing.T) {
	mdnsEnv(t, "multicast")
	netmeshtest.CheckLeaks(t)
	netmesh.SplitLAN(t, time.Second) // each asks every 1 to 3 s
	tok, err := netmesh.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	withMDNS := netmeshtest.WithConfig(func(i int, c *netmesh.Config) { c.MDNS = true })
	a := netmeshtest.Cluster(t, 2, netmeshtest.WithToken(tok), withMDNS)
	b := netmeshtest.Cluster(t, 2, netmeshtest.WithToken(tok), withMDNS,
		netmeshtest.WithConfig(func(i int, c *netmesh.Config) { c.Name = fmt.Sprintf("b%d", i) }))
	netmeshtest.WaitConverged(t, a, 10*time.Second)
	netmeshtest.WaitConverged(t, b, 10*time.Second)
	start := time.Now()
	netmeshtest.WaitConverged(t, append(a, b...), 20*time.Second)
	t.Logf("the two groups met %v after both formed", time.Since(start).Round(time.Millisecond))
}

// countMDNSQuestions counts the mDNS questions sent on the loopback
// interface from now until the test ends.
func countMDNSQuestions(t *testing.T) *atomic.Int64 {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenMulticastUDP("udp4", lo, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353})
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 9000)
		for {
			k, _, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			// A DNS header: a question has QR (the flags' top bit) clear
			// and at least one entry in the question section.
			if k >= 12 && buf[2]&0x80 == 0 && binary.BigEndian.Uint16(buf[4:6]) > 0 {
				n.Add(1)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return &n
}
