package tray

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/potluck-gpu/potluck/icons"
	"github.com/potluck-gpu/potluck/internal/size"
	"github.com/potluck-gpu/potluck/nodestate"
	"github.com/potluck-gpu/potluck/runtimes"
)

// statusLine is the first line of the tray menu: what the node is doing, in
// a few words.
func statusLine(st nodestate.Status) string {
	if p := st.Engine.Provisioning; p != nil && st.State != nodestate.StateSharing && (st.Model == nil || !st.Model.Ready) {
		return provisioningLabel(*p)
	}
	if w, ok := firstError(st); ok && (st.State == nodestate.StateError || st.State == nodestate.StateIdle) {
		return shorten(w.Message, 70)
	}
	peers := ""
	if st.InMesh {
		peers = " · " + plural(st.PeersOnline, "peer", "peers")
	}
	switch st.State {
	case nodestate.StateJoining:
		return "Joining a network…"
	case nodestate.StateStopping:
		return "Stopping…"
	case nodestate.StateError:
		return "Something went wrong: open the dashboard"
	case nodestate.StateServing:
		if st.Model == nil {
			return "Serving" + peers
		}
		if !st.Model.Ready {
			return "Loading " + st.Model.ID + "…"
		}
		if st.InMesh && st.PeersOnline > 0 {
			return fmt.Sprintf("Serving %s across %s", st.Model.ID, plural(st.PeersOnline+1, "machine", "machines"))
		}
		return "Serving " + st.Model.ID
	case nodestate.StateSharing:
		return fmt.Sprintf("Sharing %s as %s%s", formatBytes(st.MemoryOffered), modeNoun(st.Share), peers)
	}
	return "Not sharing" + peers
}

// iconState is the tray icon for st; busy is set while requests are being
// served.
func iconState(st nodestate.Status, busy bool) icons.State {
	if _, ok := firstError(st); ok || st.State == nodestate.StateError {
		return icons.Error
	}
	switch {
	case st.State == nodestate.StateJoining, st.State == nodestate.StateStopping, st.Engine.Provisioning != nil:
		return icons.Busy
	case st.Model != nil && !st.Model.Ready:
		return icons.Busy
	case busy && (st.State == nodestate.StateServing || st.State == nodestate.StateSharing):
		return icons.Busy
	case st.State == nodestate.StateSharing, st.State == nodestate.StateServing:
		return icons.Sharing
	}
	return icons.Idle
}

func firstError(st nodestate.Status) (nodestate.Warning, bool) {
	for _, w := range st.Warnings {
		if w.Severity == nodestate.SeverityError {
			return w, true
		}
	}
	return nodestate.Warning{}, false
}

// sharing reports whether st offers this computer to the pool.
func sharing(st nodestate.Status) bool {
	return st.Share != nodestate.ShareOff && st.Share != ""
}

func modeNoun(m nodestate.ShareMode) string {
	switch m {
	case nodestate.ShareWorker:
		return "shard"
	case nodestate.ShareServer:
		return "server"
	case nodestate.ShareOff, "":
		return "user"
	}
	return string(m)
}

// modeLabel names a mode in the menu and the dashboard.
func modeLabel(m nodestate.ShareMode) string {
	switch m {
	case nodestate.ShareWorker:
		return "Shard worker"
	case nodestate.ShareServer:
		return "Full server"
	case nodestate.ShareOff, "":
		return "Not sharing"
	}
	return string(m)
}

// formatBytes prints a size in GB (GiB, as memory is counted) with one
// decimal, or MB below one.
func formatBytes(b uint64) string {
	const gib, mib = 1 << 30, 1 << 20
	if b >= gib {
		return fmt.Sprintf("%.1f GB", float64(b)/gib)
	}
	if b == 0 {
		return "0 GB"
	}
	return fmt.Sprintf("%d MB", (b+mib/2)/mib)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// formatUptime prints seconds of uptime coarsely: 42s, 5m, 3h07m, 2d04h.
func formatUptime(s int64) string {
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", max(s, 0))
	case s < 3600:
		return fmt.Sprintf("%dm", s/60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}

// hardware is the part of a hardware report the dashboard shows, read from
// its JSON form so the tray does not depend on the package that measures it.
type hardware struct {
	CPU struct {
		Model        string `json:"model"`
		LogicalCores int    `json:"logical_cores"`
	} `json:"cpu"`
	Memory struct {
		TotalBytes uint64 `json:"total_bytes"`
	} `json:"memory"`
	GPUs []struct {
		Name          string `json:"name"`
		Vendor        string `json:"vendor"`
		VRAMTotal     uint64 `json:"vram_total"`
		VRAMKnown     bool   `json:"vram_known"`
		UnifiedMemory bool   `json:"unified_memory"`
	} `json:"gpus"`
	OS   string `json:"os"`
	Arch string `json:"arch"`
}

// describeHardware summarises a hardware report in lines; nil or an
// unknown shape gives none.
func describeHardware(v any) []string {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var h hardware
	if json.Unmarshal(b, &h) != nil {
		return nil
	}
	if h.CPU.Model == "" && h.Memory.TotalBytes == 0 && len(h.GPUs) == 0 {
		var wrapped struct {
			Report *hardware `json:"report"`
		}
		if json.Unmarshal(b, &wrapped) != nil || wrapped.Report == nil {
			return nil
		}
		h = *wrapped.Report
	}
	var lines []string
	if h.CPU.Model != "" || h.CPU.LogicalCores > 0 {
		lines = append(lines, fmt.Sprintf("CPU: %s (%d threads)", orDash(h.CPU.Model), h.CPU.LogicalCores))
	}
	if h.Memory.TotalBytes > 0 {
		lines = append(lines, "Memory: "+formatBytes(h.Memory.TotalBytes))
	}
	for _, g := range h.GPUs {
		name := strings.TrimSpace(g.Vendor + " " + g.Name)
		switch {
		case g.UnifiedMemory:
			lines = append(lines, "GPU: "+name+" (unified memory)")
		case g.VRAMKnown:
			lines = append(lines, fmt.Sprintf("GPU: %s, %s VRAM", name, formatBytes(g.VRAMTotal)))
		default:
			lines = append(lines, "GPU: "+name)
		}
	}
	if len(h.GPUs) == 0 && len(lines) > 0 {
		lines = append(lines, "GPU: none found")
	}
	return lines
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// provisioningLabel is the line a person reads of llama.cpp being fetched.
func provisioningLabel(p nodestate.Provisioning) string {
	s := "Getting llama.cpp " + p.Version
	switch {
	case p.Total > 0 && p.Backend != "":
		s += " (" + runtimes.BackendLabel(p.Backend) + ", " + size.Format(uint64(p.Total)) + ")"
	case p.Backend != "":
		s += " (" + runtimes.BackendLabel(p.Backend) + ")"
	}
	s += "…"
	if p.Total > 0 && p.Completed < p.Total {
		s += fmt.Sprintf(" %d%%", p.Completed*100/p.Total)
	}
	return s
}
