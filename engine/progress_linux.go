package engine

import (
	"os"
	"strconv"
	"strings"
)

// procProgress is a counter that moves while process pid works: its CPU
// time (clock ticks) plus the bytes it read and wrote, sockets included.
// ok is false when the process cannot be read.
func procProgress(pid int) (uint64, bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name may hold spaces: fields start after its ")".
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	n := utime + stime
	if io, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io"); err == nil {
		for _, line := range strings.Split(string(io), "\n") {
			for _, key := range []string{"rchar: ", "wchar: "} {
				if v, ok := strings.CutPrefix(line, key); ok {
					b, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
					n += b
				}
			}
		}
	}
	return n, true
}
