package main

import (
	"bufio"
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"time"
)

// tcpTraffic is what a process's open TCP connections carried so far, in
// payload bytes, as the kernel counts it (tcp_info).
type tcpTraffic struct {
	Sent, Received uint64
	Conns          int
}

var (
	ssPID      = regexp.MustCompile(`pid=(\d+)`)
	ssSent     = regexp.MustCompile(`\bbytes_sent:(\d+)`)
	ssReceived = regexp.MustCompile(`\bbytes_received:(\d+)`)
)

// trafficByPID reads every TCP connection on the machine with `ss -tinp`
// and sums their counters per owning process. Connections that closed are
// no longer counted, so callers compare snapshots of long-lived
// connections (a mesh node's links to its peers).
func trafficByPID() (map[int]tcpTraffic, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ss", "-tinpH").Output()
	if err != nil {
		return nil, err
	}
	return parseSS(out), nil
}

func parseSS(out []byte) map[int]tcpTraffic {
	res := map[int]tcpTraffic{}
	var pids []int
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			pids = pids[:0]
			for _, m := range ssPID.FindAllSubmatch(line, -1) {
				if p, err := strconv.Atoi(string(m[1])); err == nil {
					pids = append(pids, p)
				}
			}
			continue
		}
		var sent, recv uint64
		if m := ssSent.FindSubmatch(line); m != nil {
			sent, _ = strconv.ParseUint(string(m[1]), 10, 64)
		}
		if m := ssReceived.FindSubmatch(line); m != nil {
			recv, _ = strconv.ParseUint(string(m[1]), 10, 64)
		}
		for _, p := range pids {
			t := res[p]
			t.Sent += sent
			t.Received += recv
			t.Conns++
			res[p] = t
		}
	}
	return res
}
