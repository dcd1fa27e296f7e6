package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/potluck-gpu/potluck/bench/fig"
)

// Figure is one line of the report.
type Figure = fig.Figure

// Report is what results.json holds.
type Report struct {
	Started  time.Time         `json:"started"`
	Duration float64           `json:"duration_s"`
	Machine  Machine           `json:"machine"`
	Settings map[string]string `json:"settings"`
	Figures  []Figure          `json:"figures"`
	Errors   []string          `json:"errors,omitempty"`
}

func (r *Report) add(f Figure) { r.Figures = append(r.Figures, f) }

// fail records a figure that could not be measured, and why.
func (r *Report) fail(section, name string, err error) {
	r.Figures = append(r.Figures, Figure{Section: section, Name: name, Err: err.Error()})
	r.Errors = append(r.Errors, fmt.Sprintf("%s / %s: %v", section, name, err))
}

func met(ok bool) *bool { return &ok }

// write saves the report as indented JSON.
func (r *Report) write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// print renders the one table of the report.
func (r *Report) print(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "\nPotluck benchmark, %s\n", r.Started.Format(time.RFC3339))
	fmt.Fprintf(w, "machine: %s, %d logical CPUs, %.1f GiB RAM, Linux %s, %s, llama.cpp %s\n",
		m.CPU, m.CPUs, float64(m.MemBytes)/(1<<30), m.Kernel, m.Go, m.Llama)
	fmt.Fprintf(w, "load average at start %s, at end %s; model %s; medians of the runs shown in results.json\n\n",
		m.LoadStart, m.LoadEnd, r.Settings["model"])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SECTION\tFIGURE\tPOTLUCK\tANCHOR (same run)\tRELATION\tTARGET\tMET")
	for _, f := range r.Figures {
		if f.Err != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\terror: %s\n", f.Section, f.Name, oneLine(f.Err, 80))
			continue
		}
		anchor := "-"
		if f.Anchor != "" {
			anchor = fmt.Sprintf("%s %s", f.Anchor, formatValue(f.AnchorValue, f.Unit))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Section, f.Name, formatValue(f.Value, f.Unit),
			anchor, dash(f.Relation), dash(f.Target), metString(f.Met))
	}
	tw.Flush()
	for _, f := range r.Figures {
		if f.Note != "" && f.Err == "" {
			fmt.Fprintf(w, "  * %s: %s\n", f.Name, f.Note)
		}
	}
	fmt.Fprintf(w, "\nwrote %s in %.0fs\n", r.Settings["out"], r.Duration)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func metString(m *bool) string {
	switch {
	case m == nil:
		return "-"
	case *m:
		return "yes"
	}
	return "NO"
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

func formatValue(v float64, unit string) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	switch unit {
	case "MiB/s":
		return fmt.Sprintf("%.0f MiB/s", v)
	case "µs":
		return fmt.Sprintf("%.0f µs", v)
	case "ms":
		if math.Abs(v) < 10 {
			return fmt.Sprintf("%.2f ms", v)
		}
		return fmt.Sprintf("%.0f ms", v)
	case "s":
		return fmt.Sprintf("%.2f s", v)
	case "tok/s":
		return fmt.Sprintf("%.0f tok/s", v)
	case "%core":
		return fmt.Sprintf("%.2f%% core", v)
	case "MB":
		return fmt.Sprintf("%.0f MB", v)
	case "B/s":
		return fmt.Sprintf("%.0f B/s", v)
	}
	return fmt.Sprintf("%.3g %s", v, unit)
}

// median returns the median of xs, or NaN for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100).
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round(xs []float64, digits int) []float64 {
	p := math.Pow(10, float64(digits))
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = math.Round(x*p) / p
	}
	return out
}
