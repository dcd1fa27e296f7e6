package netmesh_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/netmesh/netmeshtest"
)

// BenchmarkTunnel compares a service tunnel between two nodes on loopback
// with a plain loopback TCP connection to the same server:
//
//	go test ./netmesh -run '^$' -bench Tunnel -benchtime 3s
//
// throughput/* sends 1 MiB per op one way (MB/s); rtt/* is one 64-byte
// request and its echo per op (ns/op is the round trip).
func BenchmarkTunnel(b *testing.B) {
	nodes := netmeshtest.Cluster(b, 2)
	netmeshtest.WaitConverged(b, nodes, 10*time.Second)
	server, client := nodes[0], nodes[1]

	sink := netmeshtest.Serve(b, func(c net.Conn) {
		io.Copy(io.Discard, c)
		c.Write([]byte{1}) // all received
	})
	echo := netmeshtest.EchoServer(b)
	for name, addr := range map[string]string{"sink": sink, "echo": echo} {
		if err := server.Expose(name, addr); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sinkTun, err := client.Dial(ctx, server.ID(), "sink")
	if err != nil {
		b.Fatal(err)
	}
	defer sinkTun.Close()
	echoTun, err := client.Dial(ctx, server.ID(), "echo")
	if err != nil {
		b.Fatal(err)
	}
	defer echoTun.Close()

	for _, path := range []struct{ name, sink, echo string }{
		{"raw", sink, echo},
		{"tunnel", sinkTun.Addr(), echoTun.Addr()},
	} {
		b.Run("throughput/"+path.name, func(b *testing.B) { benchThroughput(b, path.sink) })
		b.Run("rtt/"+path.name, func(b *testing.B) { benchRTT(b, path.echo) })
	}
}

func benchThroughput(b *testing.B, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	if _, err := io.ReadFull(c, buf[:1]); err != nil { // the sink has it all
		b.Fatal(err)
	}
}

func benchRTT(b *testing.B, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	// Warm up the path (first stream, buffers).
	for range 100 {
		c.Write(buf)
		io.ReadFull(c, buf)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}
