package hw

import (
	"strings"

	"github.com/jaypipes/ghw"
)

// cpuFromGHW summarises ghw's per-package CPU info. Machines with several
// packages report the first package's model.
func cpuFromGHW(info *ghw.CPUInfo) CPU {
	if info == nil {
		return CPU{}
	}
	c := CPU{
		PhysicalCores: int(info.TotalCores),
		LogicalCores:  int(info.TotalHardwareThreads),
	}
	if c.LogicalCores == 0 {
		c.LogicalCores = int(info.TotalThreads)
	}
	for _, p := range info.Processors {
		if p != nil && strings.TrimSpace(p.Model) != "" {
			c.Model = strings.Join(strings.Fields(p.Model), " ")
			break
		}
	}
	return c
}
