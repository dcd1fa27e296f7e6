package engine

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/potluck-gpu/potluck/internal/size"
)

// String summarises the plan for a person, one device a line.
func (p Plan) String() string {
	var b strings.Builder
	reason := p.Reason
	if !p.Fits {
		reason = "does not fit: " + reason
	}
	fmt.Fprintf(&b, "model %s (split %s): %s\n", p.Model, p.Mode, reason)
	if p.Fits {
		fmt.Fprintf(&b, "needs %s of %s offered; predicted %s\n", size.Format(p.Need), size.Format(p.Offered), formatRate(p.TokensPerSecond))
	}

	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  device\tlayers\tneeds\toffers\ttime\n")
	for _, d := range p.Devices {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", d.Label(), layersLabel(d), size.Format(d.Bytes), size.Format(d.Offer), percent(d.Share))
	}
	if p.NetworkSeconds > 0 && p.TokensPerSecond > 0 {
		fmt.Fprintf(tw, "  network round trips\t\t\t\t%s\n", percent(p.NetworkSeconds*p.TokensPerSecond))
	}
	tw.Flush()

	for _, e := range p.Excluded {
		who := nodeLabel(e.ID, e.Name, false)
		switch {
		case e.Local:
			who = "this node's " + e.Device
		case e.Device != "":
			who += " " + e.Device
		}
		fmt.Fprintf(&b, "left out %s: %s\n", who, e.Reason)
	}
	if p.Fits && len(p.ServerDevices) > 0 {
		parts := make([]string, len(p.TensorSplit))
		for i, f := range p.TensorSplit {
			parts[i] = strconv.FormatFloat(f, 'f', -1, 64)
		}
		fmt.Fprintf(&b, "llama-server: --device %s --n-gpu-layers %d --tensor-split %s",
			strings.Join(p.ServerDevices, ","), p.GPULayers, strings.Join(parts, ","))
		if len(p.Workers) > 0 {
			fmt.Fprintf(&b, ", %s over RPC", plural(len(p.Workers), "worker"))
		}
		b.WriteString("\n")
	}
	switch {
	case p.Draft != nil && p.Draft.Lookup != "":
		d := p.Draft
		measured := "not measured yet"
		if d.Measured {
			measured = fmt.Sprintf("%.0f %% of drafted tokens accepted, measured", 100*d.Acceptance)
		}
		fmt.Fprintf(&b, "draft-free speculation: %s (%s) [this node], up to %s at a time: predicted %s with it, %s without (%s)\n",
			d.Model, d.Lookup, plural(d.Max, "token"), formatRate(d.TokensPerSecond), formatRate(p.TokensPerSecond), measured)
	case p.Draft != nil:
		d := p.Draft
		assumed := "assumed"
		if d.Measured {
			assumed = "measured"
		}
		fmt.Fprintf(&b, "draft %s on %s [this node] (%s, %s at a time): predicted %s with it, %s without (%.0f %% of drafted tokens accepted, %s)\n",
			d.Model, d.Device, size.Format(d.Bytes), plural(d.Max, "token"), formatRate(d.TokensPerSecond), formatRate(p.TokensPerSecond), 100*d.Acceptance, assumed)
	case p.NoDraft != "":
		fmt.Fprintf(&b, "no draft: %s\n", p.NoDraft)
	}
	return b.String()
}

// Label names the device for a person: "CPU [this node]", "Vulkan0
// (llvmpipe) [this node]", "laptop CUDA0 (NVIDIA RTX 4060) as RPC1".
func (d DeviceAssignment) Label() string {
	s := d.Device
	if d.Description != "" && d.Backend != "CPU" {
		s += " (" + shortDesc(d.Description) + ")"
	}
	if d.Local {
		return s + " [this node]"
	}
	s = nodeLabel(d.Node, d.NodeName, false) + " " + s
	if d.Use != "" && d.Use != d.Device {
		s += " as " + d.Use
	}
	return s
}

func layersLabel(d DeviceAssignment) string {
	s := strconv.Itoa(d.Layers)
	if d.Output {
		s += "+output"
	}
	return s
}

func percent(f float64) string {
	if f <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", f*100)
}

func nodeLabel(id, name string, local bool) string {
	label := name
	switch {
	case label == "":
		label = id
	case id != "" && id != name:
		label = fmt.Sprintf("%s (%s)", name, id)
	}
	if local {
		label += " [this node]"
	}
	return label
}
