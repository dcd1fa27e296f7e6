package engine

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// SplitMode says how many devices a model is spread over.
type SplitMode string

const (
	// SplitFit picks the fastest plan that holds the model: the head's
	// GPUs first, then remote GPUs, then memory, leaving out every device
	// that would make decoding slower.
	SplitFit SplitMode = "fit"
	// SplitAll spreads the layers over every eligible device, in
	// proportion to what each offers.
	SplitAll SplitMode = "all"
)

// ParseSplitMode reads a --split value; the empty string is SplitFit.
func ParseSplitMode(s string) (SplitMode, error) {
	switch m := SplitMode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return SplitFit, nil
	case SplitFit, SplitAll:
		return m, nil
	}
	return "", fmt.Errorf("split mode %q: want %q or %q", s, SplitFit, SplitAll)
}

// PlanDevice is one device of a node that a plan can put layers on.
type PlanDevice struct {
	Name        string `json:"name"` // ggml's name on its node: "CUDA0", "Vulkan0", "CPU"
	Backend     string `json:"backend"`
	Description string `json:"description,omitempty"`
	Offer       uint64 `json:"offer"` // bytes it lends
	Speed       Speed  `json:"speed"`
}

// IsCPU says whether the device is the node's CPU and system memory.
func (d PlanDevice) IsCPU() bool { return d.Backend == "CPU" }

// Candidate is a node that could hold part of a model: the head, or an RPC
// worker of the mesh.
type Candidate struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	RPCProtocol string `json:"rpc_protocol"` // llama.cpp RPC protocol of its worker, e.g. "8.0.0"
	Local       bool   `json:"local"`        // the head itself
	// RTT is the round trip from the head; zero for the head.
	RTT time.Duration `json:"rtt"`
	// Devices are the node's devices. A worker's are in the order its RPC
	// worker exposes them (-d), which is the order the head sees them in.
	// The head's CPU is the one whose Backend is "CPU".
	Devices []PlanDevice `json:"devices"`
}

// Offer is what the node lends, all devices together.
func (c Candidate) Offer() uint64 {
	var n uint64
	for _, d := range c.Devices {
		n += d.Offer
	}
	return n
}

// PlanInput is everything MakePlan decides from.
type PlanInput struct {
	Model    ModelEstimate
	Head     Candidate   // this node; llama-server runs here
	Workers  []Candidate // the RPC workers in the mesh, in any order
	Protocol string      // the head's llama.cpp RPC protocol, e.g. "8.0.0"
	Mode     SplitMode   // empty: SplitFit
	// Devices are the head's devices the user named (--device): only
	// these of the head's own devices are used, and every one of them
	// gets layers first, however slow. Empty: the plan picks.
	Devices []string
}

// DeviceAssignment is one device's share of a plan.
type DeviceAssignment struct {
	Node        string `json:"node"` // the node's ID
	NodeName    string `json:"node_name"`
	Local       bool   `json:"local"`  // on the head
	Device      string `json:"device"` // its name on its node, e.g. "Vulkan0"
	Use         string `json:"use"`    // its name for llama-server on the head: "CPU", "Vulkan0", "RPC1"
	Backend     string `json:"backend"`
	Description string `json:"description,omitempty"`
	Layers      int    `json:"layers"`
	Output      bool   `json:"output"` // it holds the output layer
	Bytes       uint64 `json:"bytes"`  // what its share needs
	Offer       uint64 `json:"offer"`  // what it lends
	// Seconds is its part of the time per token; Share that part of the
	// whole.
	Seconds float64 `json:"seconds_per_token"`
	Share   float64 `json:"share"`
}

// Assignment is one node's share of a plan, all its devices together.
type Assignment struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Local  bool   `json:"local"`
	Layers int    `json:"layers"`
	Bytes  uint64 `json:"bytes"` // what its share needs
	Offer  uint64 `json:"offer"` // what it lends
}

// Exclusion is a node or device left out of a plan and why, in words a
// person reads. Device is empty when the whole node is left out.
type Exclusion struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Device string `json:"device,omitempty"`
	Local  bool   `json:"local,omitempty"` // a device of the head
	Reason string `json:"reason"`
}

// Plan is how a model is split over devices of the head and its workers.
//
// llama-server runs on the head. The head's CPU keeps the embeddings and the
// first layers; the other devices (ServerDevices, the head's own GPUs and the
// workers' devices over RPC) hold the last layers in the proportions of
// TensorSplit, and the last of them the output layer too: llama.cpp's
// --n-gpu-layers (GPULayers) counts the output layer first, and the output
// takes one share of the split.
//
// When Fits is false, Devices shows the best attempt and the launch
// settings are empty: such a plan must not start.
type Plan struct {
	Model    string             `json:"model"`
	Mode     SplitMode          `json:"mode"`
	Need     uint64             `json:"need"`    // bytes the devices of the plan need together
	Offered  uint64             `json:"offered"` // bytes those devices offer together
	Fits     bool               `json:"fits"`
	Reason   string             `json:"reason"`
	Devices  []DeviceAssignment `json:"devices"` // the head's CPU first, then ServerDevices' order
	Nodes    []Assignment       `json:"nodes"`   // the head first, then Workers' order
	Excluded []Exclusion        `json:"excluded,omitempty"`

	// TokensPerSecond is the predicted decoding speed; NetworkSeconds the
	// part of the time per token spent on round trips to workers.
	TokensPerSecond float64 `json:"tokens_per_second"`
	NetworkSeconds  float64 `json:"network_seconds_per_token"`

	Workers       []string  `json:"workers,omitempty"`        // IDs of the remote nodes, in --rpc order
	ServerDevices []string  `json:"server_devices,omitempty"` // --device; empty: the CPU alone
	GPULayers     int       `json:"gpu_layers"`               // --n-gpu-layers
	TensorSplit   []float64 `json:"tensor_split,omitempty"`   // one per entry of ServerDevices

	// Draft is the draft model decoding runs with (speculative
	// decoding), with its predicted speed; NoDraft says why there is
	// none where one was looked for.
	Draft   *DraftPlan `json:"draft,omitempty"`
	NoDraft string     `json:"no_draft,omitempty"`
}

// RPCDeviceName is how llama-server on the head names the i-th device of
// all its RPC workers together, counting in --rpc order.
func RPCDeviceName(i int) string { return fmt.Sprintf("RPC%d", i) }

// MakePlan decides which devices hold which layers of in.Model. It does no
// I/O.
func MakePlan(in PlanInput) Plan {
	mode := SplitFit
	if in.Mode == SplitAll {
		mode = SplitAll
	}
	in.Head.Local = true
	pool, excluded := newPool(in)

	var best layout
	switch mode {
	case SplitAll:
		best = pool.proportional(pool.offload)
		for _, c := range pool.offload {
			if best.layers[c.index] == 0 {
				excluded = append(excluded, pool.exclude(c, fmt.Sprintf("not needed: the model's %d layers all went to larger offers", in.Model.Layers)))
			}
		}
	default:
		var others map[string]layout
		best, others = pool.fastest()
		excluded = append(excluded, pool.explain(best, others)...)
	}
	slices.SortStableFunc(excluded, func(a, b Exclusion) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Device, b.Device))
	})
	return pool.plan(mode, best, excluded)
}

// describe names a device for a person: "Vulkan0 (llvmpipe)" on the head,
// "laptop's CUDA0" elsewhere.
func describe(c planDev) string {
	name := c.dev.Name
	if c.dev.Description != "" && !c.dev.IsCPU() {
		name += " (" + shortDesc(c.dev.Description) + ")"
	}
	if c.node.Local {
		return name
	}
	return nodeName(c.node) + "'s " + name
}

func shortDesc(s string) string {
	if i := strings.Index(s, " ("); i > 0 {
		return s[:i]
	}
	return s
}

func nodeName(c Candidate) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// formatRate writes tokens a second with sensible precision.
func formatRate(tps float64) string {
	switch {
	case tps >= 100:
		return fmt.Sprintf("%.0f tok/s", tps)
	case tps >= 10:
		return fmt.Sprintf("%.1f tok/s", tps)
	}
	return fmt.Sprintf("%.2f tok/s", tps)
}
