package hw

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// parseMeminfo reads MemTotal and MemAvailable, in bytes, from the text of
// Linux's /proc/meminfo ("MemAvailable:   29987976 kB"). Kernels before 3.14
// lack MemAvailable; then free + buffers + cached stands in for it.
func parseMeminfo(b []byte) (total, available uint64, err error) {
	fields := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		if len(f) > 1 && strings.EqualFold(f[1], "kB") {
			n *= KiB
		}
		fields[key] = n
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("reading meminfo: %w", err)
	}
	total, ok := fields["MemTotal"]
	if !ok || total == 0 {
		return 0, 0, fmt.Errorf("meminfo has no MemTotal")
	}
	available, ok = fields["MemAvailable"]
	if !ok {
		available = fields["MemFree"] + fields["Buffers"] + fields["Cached"]
	}
	return total, min(available, total), nil
}
