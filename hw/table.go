package hw

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteTable prints a report and its offer for people (`potluck hw`): the
// machine, one row per GPU, and what would be offered and why.
func WriteTable(w io.Writer, r Report, o Offer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }

	p("Machine\t%s/%s\n", r.OS, r.Arch)
	p("CPU\t%s\n", cpuLine(r.CPU))
	p("Memory\t%s total, %s available\n", FormatSize(r.Memory.TotalBytes), FormatSize(r.Memory.AvailableBytes))
	if len(r.GPUs) == 0 {
		p("GPUs\tnone found\n")
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(r.GPUs) > 0 {
		p("\n#\tGPU\tBACKEND\tVRAM FREE\tVRAM TOTAL\tUTIL\tTEMP\tDRIVER\n")
		for i, g := range r.GPUs {
			free, total := "?", "?"
			if g.VRAMKnown {
				free, total = FormatSize(g.VRAMFree), FormatSize(g.VRAMTotal)
			}
			if g.UnifiedMemory {
				total += " (unified)"
			}
			p("%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i, g.Name, g.Backend, free, total,
				known(g.Utilization, "%"), known(g.TemperatureC, "C"), driverLine(g))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	p("\nOffer\t%s", o.String())
	if o.Capped {
		p(", capped")
	}
	p("\n")
	for _, line := range o.Explanation {
		p("\t- %s\n", line)
	}
	if len(r.Notes) > 0 {
		p("Notes\t\n")
		for _, n := range r.Notes {
			p("\t- %s\n", n)
		}
	}
	return tw.Flush()
}

func cpuLine(c CPU) string {
	var parts []string
	if c.PhysicalCores > 0 {
		parts = append(parts, plural(c.PhysicalCores, "core"))
	}
	if c.LogicalCores > 0 {
		parts = append(parts, plural(c.LogicalCores, "thread"))
	}
	s := cpuName(c)
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s
}

func driverLine(g GPU) string {
	d := g.Driver
	if g.CUDAVersion != "" {
		if d != "" {
			d += ", "
		}
		d += "CUDA " + g.CUDAVersion
	}
	if d == "" {
		return "-"
	}
	return d
}

func known(v int, unit string) string {
	if v < 0 {
		return "-"
	}
	return strconv.Itoa(v) + unit
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
