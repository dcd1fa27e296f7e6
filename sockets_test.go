package main

import (
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// assertLoopbackOnly fails the test if any llama.cpp process on this machine
// listens on an address other than loopback. It reads /proc, so it needs no
// tools.
func assertLoopbackOnly(t *testing.T) {
	t.Helper()
	listening := map[string]string{} // socket inode -> local address
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 10 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			listening[fields[9]] = fields[1]
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	checked := 0
	for _, p := range procs {
		cmdline, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil {
			continue
		}
		cmd := string(cmdline)
		if !strings.Contains(cmd, "llama-server") && !strings.Contains(cmd, "rpc-server") {
			continue
		}
		fds, _ := filepath.Glob(filepath.Join(p, "fd", "*"))
		for _, fd := range fds {
			target, err := os.Readlink(fd)
			if err != nil || !strings.HasPrefix(target, "socket:[") {
				continue
			}
			inode := strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")
			addr, ok := listening[inode]
			if !ok {
				continue
			}
			checked++
			ip, port := decodeProcAddr(addr)
			if !ip.IsLoopback() {
				t.Errorf("%s listens on %s:%d, off loopback: %s", filepath.Base(p), ip, port, strings.ReplaceAll(cmd, "\x00", " "))
			}
		}
	}
	if checked == 0 {
		t.Error("found no listening llama.cpp socket to check")
	}
	t.Logf("%d llama.cpp listening sockets, all on loopback", checked)
}

// decodeProcAddr parses /proc/net/tcp's "0100007F:1F90" form.
func decodeProcAddr(s string) (net.IP, int) {
	hexIP, hexPort, _ := strings.Cut(s, ":")
	b, _ := hex.DecodeString(hexIP)
	// The kernel prints each 32-bit word in host (little-endian) order.
	for i := 0; i+4 <= len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	var port int
	fmt.Sscanf(hexPort, "%X", &port)
	return net.IP(b), port
}

func TestDecodeProcAddr(t *testing.T) {
	ip, port := decodeProcAddr("0100007F:1F90")
	if !ip.Equal(net.ParseIP("127.0.0.1")) || port != 8080 {
		t.Errorf("got %s:%d", ip, port)
	}
	ip, _ = decodeProcAddr("00000000000000000000000001000000:0050")
	if !ip.Equal(net.IPv6loopback) {
		t.Errorf("v6 loopback decoded as %s", ip)
	}
}
