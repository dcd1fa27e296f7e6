package engine

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/internal/size"
)

const (
	mib = uint64(1) << 20
	gib = uint64(1) << 30
)

// uniformModel is a model whose layers are all alike.
func uniformModel(layers int, layerWeights, kv, output, compute uint64) ModelEstimate {
	m := ModelEstimate{
		Name:            "test-model",
		Arch:            "llama",
		Layers:          layers,
		OutputBytes:     output,
		KVBytesPerLayer: kv,
		CtxSize:         4096,
		ComputeBytes:    compute,
	}
	for range layers {
		m.LayerBytes = append(m.LayerBytes, layerWeights)
	}
	m.OutputLayerBytes = output / 2 // the output matrix; the embeddings are the rest
	m.WeightBytes = output + uint64(layers)*layerWeights
	m.TotalBytes = m.WeightBytes + uint64(layers)*kv + compute
	return m
}

// bigModel needs 1 GiB a layer (768 MiB of weights, 256 MiB of cache) over
// 40 layers, 1 GiB outside them and 512 MiB of compute buffer per device:
// 41.5 GiB on one device.
var bigModel = uniformModel(40, 768*mib, 256*mib, gib, 512*mib)

// tinyModel is stories260K-sized: 5 layers of 50 KB.
var tinyModel = uniformModel(5, 50_000, 10_000, 200_000, 2*mib)

// Device speeds of the tests: a desktop's memory, a mid-range GPU, a
// datacentre GPU, and lavapipe on the desktop's CPU.
var (
	cpuSpeed  = CPUSpeed(20e9)
	gpuSpeed  = GPUSpeed(500e9)
	fastSpeed = GPUSpeed(3000e9)
	lavapipe  = DeviceSpeed(Device{Name: "Vulkan0", Backend: "Vulkan", Description: "llvmpipe (LLVM 15.0.6, 256 bits)"}, 20e9)
)

func cpu(offer uint64) PlanDevice {
	return PlanDevice{Name: "CPU", Backend: "CPU", Offer: offer, Speed: cpuSpeed}
}

func gpu(name string, offer uint64, s Speed) PlanDevice {
	backend := strings.TrimRight(name, "0123456789")
	return PlanDevice{Name: name, Backend: backend, Description: "a " + backend + " GPU", Offer: offer, Speed: s}
}

func head(devs ...PlanDevice) Candidate {
	return Candidate{ID: "head", Name: "desk", RPCProtocol: "8.0.0", Local: true, Devices: devs}
}

// worker is a node a millisecond away.
func worker(id string, devs ...PlanDevice) Candidate {
	return Candidate{ID: id, Name: "node-" + id, RPCProtocol: "8.0.0", RTT: time.Millisecond, Devices: devs}
}

func speaking(c Candidate, proto string) Candidate {
	c.RPCProtocol = proto
	return c
}

func TestMakePlan(t *testing.T) {
	for _, tc := range []struct {
		name        string
		in          PlanInput
		wantDevices []string // "node/device:layers", the head's CPU first; "+o" holds the output
		wantFits    bool
		wantReason  []string          // substrings of Reason
		wantOut     map[string]string // excluded "id" or "id/device" -> substring of its reason
		wantServer  string            // --device, --n-gpu-layers, --tensor-split
	}{
		{
			name: "fits on the head's CPU alone",
			in: PlanInput{Model: bigModel, Head: head(cpu(64 * gib)),
				Workers: []Candidate{worker("a", PlanDevice{Name: "CPU", Backend: "CPU", Offer: 32 * gib, Speed: CPUSpeed(10e9)})}},
			wantDevices: []string{"head/CPU:40"},
			wantFits:    true,
			wantReason:  []string{"this node alone, on the CPU"},
			wantOut:     map[string]string{"a": "slower with it"},
			wantServer:  " 0 ",
		},
		{
			name:        "a model that fits on one GPU runs there alone",
			in:          PlanInput{Model: bigModel, Head: head(cpu(64*gib), gpu("CUDA0", 48*gib, gpuSpeed))},
			wantDevices: []string{"head/CPU:0", "head/CUDA0:40+o"},
			wantFits:    true,
			wantReason:  []string{"this node alone, 1 device besides the CPU"},
			wantServer:  "CUDA0 41 41",
		},
		{
			// 15.5 GiB of room on the GPU: 15 layers; the CPU keeps 25.
			name:        "a GPU too small keeps the first layers on the CPU",
			in:          PlanInput{Model: bigModel, Head: head(cpu(64*gib), gpu("CUDA0", 16*gib, gpuSpeed))},
			wantDevices: []string{"head/CPU:25", "head/CUDA0:15+o"},
			wantFits:    true,
			wantServer:  "CUDA0 16 16",
		},
		{
			// The head's GPU first, then the worker's, the rest on the
			// head's CPU: every layer off the CPU saves more than the
			// round trips to the worker cost.
			name: "the head's GPUs, then remote GPUs, then memory",
			in: PlanInput{Model: bigModel, Head: head(cpu(64*gib), gpu("CUDA0", 16*gib, gpuSpeed)),
				Workers: []Candidate{worker("a", gpu("CUDA0", 12*gib, fastSpeed), cpu(32*gib))}},
			wantDevices: []string{"head/CPU:14", "a/CUDA0:11", "head/CUDA0:15+o"},
			wantFits:    true,
			wantReason:  []string{"2 nodes"},
			wantOut:     map[string]string{"a/CPU": "not needed"},
			wantServer:  "RPC0,CUDA0 27 11,16",
		},
		{
			// A worker's devices are RPC0.. in --rpc order (workers by
			// ID), all of each worker's devices counted.
			name: "remote devices are named in --rpc order",
			in: PlanInput{Model: bigModel, Head: head(cpu(2 * gib)),
				Workers: []Candidate{worker("b", gpu("Vulkan0", 16*gib, gpuSpeed), gpu("Vulkan1", 16*gib, gpuSpeed)),
					worker("a", cpu(8*gib), gpu("CUDA0", 24*gib, gpuSpeed))}},
			// The device that offers most goes last, with the output.
			wantDevices: []string{"head/CPU:0", "b/Vulkan0:15", "b/Vulkan1:2", "a/CUDA0:23+o"},
			wantFits:    true,
			wantOut:     map[string]string{"a/CPU": "slower with it"},
			wantServer:  "RPC2,RPC3,RPC1 41 15,2,24",
		},
		{
			// A device that lends nothing (yet) keeps its place: the
			// worker exposes it, so the head counts it.
			name: "a device that lends nothing keeps its RPC name",
			in: PlanInput{Model: bigModel, Head: head(cpu(2 * gib)),
				Workers: []Candidate{worker("a", cpu(0), gpu("CUDA0", 48*gib, gpuSpeed))}},
			wantDevices: []string{"head/CPU:0", "a/CUDA0:40+o"},
			wantFits:    true,
			wantServer:  "RPC1 41 41",
		},
		{
			name: "lavapipe is slower than the CPU it runs on",
			in: PlanInput{Model: tinyModel, Head: head(cpu(8*gib), PlanDevice{Name: "Vulkan0", Backend: "Vulkan",
				Description: "llvmpipe (LLVM 15.0.6, 256 bits)", Offer: 8 * gib, Speed: lavapipe})},
			wantDevices: []string{"head/CPU:5"},
			wantFits:    true,
			wantOut:     map[string]string{"head/Vulkan0": "slower with it"},
			wantServer:  " 0 ",
		},
		{
			name: "--device makes a slow device take every layer",
			in: PlanInput{Model: tinyModel, Devices: []string{"vulkan0"}, Head: head(cpu(8*gib), PlanDevice{Name: "Vulkan0", Backend: "Vulkan",
				Description: "llvmpipe (LLVM 15.0.6, 256 bits)", Offer: 8 * gib, Speed: lavapipe}, gpu("CUDA0", 8*gib, gpuSpeed))},
			wantDevices: []string{"head/CPU:0", "head/Vulkan0:5+o"},
			wantFits:    true,
			wantOut:     map[string]string{"head/CUDA0": "not named by --device"},
			wantServer:  "Vulkan0 6 6",
		},
		{
			name: "does not fit",
			in: PlanInput{Model: bigModel, Head: head(cpu(8 * gib)), Workers: []Candidate{
				worker("a", cpu(12*gib)), worker("b", cpu(10*gib)), speaking(worker("x", cpu(100*gib)), "7.0.0")}},
			wantDevices: []string{"head/CPU:10", "b/CPU:14", "a/CPU:16+o"},
			wantReason:  []string{"needs 42.5 GiB, pool offers 30.0 GiB (3 devices on 3 nodes)"},
			wantOut:     map[string]string{"x": "speaks llama.cpp RPC 7.0.0, this node 8.0.0"},
		},
		{
			name: "sum fits but the head cannot hold its part",
			in: PlanInput{Model: bigModel, Head: head(cpu(3 * gib / 4)), Workers: []Candidate{
				worker("a", cpu(42*gib))}},
			wantDevices: []string{"head/CPU:0", "a/CPU:40+o"},
			wantReason:  []string{"needs 42.0 GiB, pool offers 42.8 GiB", "this node's CPU would need 1.0 GiB of the 768.0 MiB"},
		},
		{
			name: "protocol mismatch, no protocol, zero offer, duplicate, self",
			in: PlanInput{Model: bigModel, Head: head(cpu(64 * gib)), Mode: SplitAll, Workers: []Candidate{
				speaking(worker("old", cpu(64*gib)), "7.0.0"),
				speaking(worker("none", cpu(64*gib)), ""),
				worker("zero", cpu(0)),
				worker("a", cpu(64*gib)), worker("a", cpu(64*gib)),
				worker("head", cpu(64*gib)),
			}},
			wantDevices: []string{"head/CPU:20", "a/CPU:20+o"},
			wantFits:    true,
			wantOut: map[string]string{
				"old":  "speaks llama.cpp RPC 7.0.0, this node 8.0.0",
				"none": "reports no llama.cpp RPC protocol",
				"zero": "offers no memory",
				"a":    "more than once",
				"head": "is this node",
			},
			wantServer: "RPC0 21 21",
		},
		{
			name:        "head knows no protocol",
			in:          PlanInput{Model: bigModel, Head: head(cpu(8 * gib)), Workers: []Candidate{worker("a", cpu(64*gib))}, Protocol: "-"},
			wantDevices: []string{"head/CPU:40"},
			wantOut:     map[string]string{"a": "speaks llama.cpp RPC 8.0.0, this node does not know its own"},
		},
		{
			// 24 layers of 64 MiB, offers 8:16:8:4 GiB less fixed costs:
			// 5.26, 10.74, 5.35 and 2.65 layers.
			name: "all spreads by offer",
			in: PlanInput{Model: uniformModel(24, 48*mib, 16*mib, 128*mib, 64*mib), Head: head(cpu(8 * gib)), Mode: SplitAll,
				Workers: []Candidate{worker("c", cpu(4*gib)), worker("b", cpu(8*gib)), worker("a", cpu(16*gib)), speaking(worker("d", cpu(64*gib)), "9.0.0")}},
			wantDevices: []string{"head/CPU:5", "b/CPU:5", "c/CPU:3", "a/CPU:11+o"},
			wantFits:    true,
			wantOut:     map[string]string{"d": "RPC 9.0.0"},
			wantServer:  "RPC1,RPC2,RPC0 20 5,3,12",
		},
		{
			name: "all gives the smallest worker one layer",
			in: PlanInput{Model: uniformModel(6, gib, 0, gib/2, 0), Head: head(cpu(64 * gib)), Mode: SplitAll,
				Workers: []Candidate{worker("a", cpu(64*gib)), worker("b", cpu(gib))}},
			wantDevices: []string{"head/CPU:2", "b/CPU:1", "a/CPU:3+o"},
			wantFits:    true,
		},
		{
			name: "two layers over three workers, all",
			in: PlanInput{Model: uniformModel(2, gib, 0, gib/2, 0), Head: head(cpu(gib)), Mode: SplitAll,
				Workers: []Candidate{worker("a", cpu(8*gib)), worker("b", cpu(4*gib)), worker("c", cpu(2*gib))}},
			wantDevices: []string{"head/CPU:0", "b/CPU:1", "a/CPU:1+o"},
			wantFits:    true,
			wantOut:     map[string]string{"c": "2 layers all went to larger offers"},
		},
		{
			// Each worker holds one layer; the fastest plan needs two.
			name: "two layers over three workers, fit",
			in: PlanInput{Model: uniformModel(2, gib, 0, gib/2, 0), Head: head(cpu(gib / 2)),
				Workers: []Candidate{worker("a", cpu(5*gib/4)), worker("b", cpu(5*gib/4)), worker("c", cpu(5*gib/4))}},
			wantDevices: []string{"head/CPU:0", "b/CPU:1", "a/CPU:1+o"},
			wantFits:    true,
			wantOut:     map[string]string{"c": "not needed"},
		},
		{
			name:        "no layers at all",
			in:          PlanInput{Model: uniformModel(0, 0, 0, gib, 0), Head: head(cpu(8 * gib)), Mode: SplitAll, Workers: []Candidate{worker("a", cpu(8*gib))}},
			wantDevices: []string{"head/CPU:0"},
			wantFits:    true,
			wantReason:  []string{"alone"},
			wantOut:     map[string]string{"a": "not needed"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			switch in.Protocol {
			case "":
				in.Protocol = "8.0.0"
			case "-":
				in.Protocol = ""
			}
			p := MakePlan(in)
			checkPlan(t, in, p)

			var got []string
			for i, d := range p.Devices {
				s := fmt.Sprintf("%s/%s:%d", d.Node, d.Device, d.Layers)
				if d.Output && i > 0 {
					s += "+o"
				}
				got = append(got, s)
			}
			if !slices.Equal(got, tc.wantDevices) {
				t.Errorf("devices = %v, want %v", got, tc.wantDevices)
			}
			if p.Fits != tc.wantFits {
				t.Errorf("fits = %v, want %v (%s)", p.Fits, tc.wantFits, p.Reason)
			}
			for _, s := range tc.wantReason {
				if !strings.Contains(p.Reason, s) {
					t.Errorf("reason %q does not say %q", p.Reason, s)
				}
			}
			gotOut := map[string]string{}
			for _, e := range p.Excluded {
				key := e.ID
				if e.Device != "" {
					key += "/" + e.Device
				}
				gotOut[key] = e.Reason
			}
			for id, want := range tc.wantOut {
				if !strings.Contains(gotOut[id], want) {
					t.Errorf("excluded %s: reason %q, want it to say %q", id, gotOut[id], want)
				}
			}
			if len(gotOut) != len(tc.wantOut) {
				t.Errorf("excluded %v, want exactly %v", gotOut, tc.wantOut)
			}
			if tc.wantServer != "" {
				split := make([]string, len(p.TensorSplit))
				for i, f := range p.TensorSplit {
					split[i] = fmt.Sprint(f)
				}
				if got := fmt.Sprintf("%s %d %s", strings.Join(p.ServerDevices, ","), p.GPULayers, strings.Join(split, ",")); got != tc.wantServer {
					t.Errorf("llama-server gets %q, want %q", got, tc.wantServer)
				}
			}
			if t.Failed() {
				t.Logf("plan:\n%s", p)
			}
		})
	}
}

// checkPlan verifies what must hold of every plan.
func checkPlan(t *testing.T, in PlanInput, p Plan) {
	t.Helper()
	m := in.Model
	if len(p.Devices) == 0 || p.Devices[0].Node != in.Head.ID || p.Devices[0].Device != "CPU" || !p.Devices[0].Local {
		t.Fatalf("the head's CPU is not the first device: %+v", p.Devices)
	}
	if len(p.Nodes) == 0 || p.Nodes[0].ID != in.Head.ID {
		t.Fatalf("the head is not the first node: %+v", p.Nodes)
	}
	layers, next, outputs := 0, 0, 0
	for _, d := range p.Devices[1:] {
		if d.Output {
			outputs++
		}
	}
	var need, offered uint64
	var seconds float64
	for i, d := range p.Devices {
		if i > 0 && d.Layers < 1 && !d.Output {
			t.Errorf("device %s/%s is in the plan with no layer", d.Node, d.Device)
		}
		want := m.ComputeBytes
		switch {
		case i == 0 && outputs == 0:
			want += m.OutputBytes
		case i == 0 && m.OutputTied:
			want += m.OutputBytes
		case i == 0:
			want += m.OutputBytes - m.OutputLayerBytes
		case d.Output:
			want += m.OutputLayerBytes
		}
		for range d.Layers {
			want += m.LayerBytes[next] + m.KVBytesPerLayer
			next++
		}
		if d.Bytes != want {
			t.Errorf("device %s/%s: %d bytes, want %d", d.Node, d.Device, d.Bytes, want)
		}
		if p.Fits && d.Bytes > d.Offer {
			t.Errorf("plan fits, but %s/%s needs %d of its %d", d.Node, d.Device, d.Bytes, d.Offer)
		}
		layers += d.Layers
		need += d.Bytes
		offered += d.Offer
		seconds += d.Seconds
	}
	if layers != m.Layers {
		t.Errorf("layers add up to %d, want %d", layers, m.Layers)
	}
	if p.Need != need || p.Offered != offered {
		t.Errorf("need %d offered %d, devices add up to %d and %d", p.Need, p.Offered, need, offered)
	}
	// llama.cpp offloads the output first: it is on the last device
	// whenever a device besides the CPU holds layers.
	if offloads := len(p.Devices) - 1; outputs != min(offloads, 1) || (outputs == 1 && !p.Devices[len(p.Devices)-1].Output) {
		t.Errorf("the output is on %d devices besides the CPU, of %d; want the last of them", outputs, offloads)
	}
	if p.Devices[0].Output == (outputs == 1) {
		t.Errorf("the CPU holds the output: %v, another device does: %v", p.Devices[0].Output, outputs == 1)
	}
	if p.TokensPerSecond <= 0 || seconds+p.NetworkSeconds <= 0 {
		t.Errorf("no prediction: %v tok/s", p.TokensPerSecond)
	} else if got := 1 / (seconds + p.NetworkSeconds); got/p.TokensPerSecond > 1.0001 || got/p.TokensPerSecond < 0.9999 {
		t.Errorf("predicted %v tok/s, the devices' times add up to %v", p.TokensPerSecond, got)
	}

	if p.Fits {
		var devs []string
		var split []float64
		offloaded := 0
		for _, d := range p.Devices[1:] {
			devs = append(devs, d.Use)
			split = append(split, float64(d.Layers))
			offloaded += d.Layers
		}
		wantGPU := offloaded
		if outputs == 1 {
			wantGPU++
			split[len(split)-1]++
		}
		if p.GPULayers != wantGPU || !slices.Equal(p.ServerDevices, devs) || !slices.Equal(p.TensorSplit, split) {
			t.Errorf("launch: --device %v --n-gpu-layers %d --tensor-split %v; want %v %d %v", p.ServerDevices, p.GPULayers, p.TensorSplit, devs, wantGPU, split)
		}
		var ids []string
		for _, n := range p.Nodes[1:] {
			ids = append(ids, n.ID)
		}
		slices.Sort(ids) // --rpc order: the workers as given, by ID
		if !slices.Equal(p.Workers, ids) {
			t.Errorf("workers %v, want %v", p.Workers, ids)
		}
	} else if p.Workers != nil || p.TensorSplit != nil || p.GPULayers != 0 || p.ServerDevices != nil {
		t.Errorf("a plan that does not fit has launch settings: %v %v %d %v", p.Workers, p.TensorSplit, p.GPULayers, p.ServerDevices)
	}

	// Every worker given is placed or excluded, once.
	seen := map[string]int{}
	for _, n := range p.Nodes[1:] {
		seen[n.ID]++
	}
	for _, e := range p.Excluded {
		if e.Device == "" {
			seen[e.ID]++
		}
	}
	given := map[string]int{}
	for _, w := range in.Workers {
		given[w.ID]++
	}
	for id, n := range given {
		if seen[id] != n {
			t.Errorf("worker %s given %d times, placed or excluded %d", id, n, seen[id])
		}
	}
	if !slices.IsSortedFunc(p.Excluded, func(a, b Exclusion) int { return strings.Compare(a.ID+"/"+a.Device, b.ID+"/"+b.Device) }) {
		t.Errorf("exclusions not sorted by ID: %+v", p.Excluded)
	}
}

// The plan does not depend on the order workers are listed in.
func TestMakePlanDeterministic(t *testing.T) {
	ws := []Candidate{worker("a", cpu(12*gib)), worker("b", cpu(12*gib), gpu("CUDA0", 8*gib, gpuSpeed)), worker("c", cpu(13*gib)),
		worker("d", cpu(2*gib)), worker("e", cpu(12*gib))}
	want := MakePlan(PlanInput{Model: bigModel, Head: head(cpu(8 * gib)), Workers: ws, Protocol: "8.0.0"}).String()
	for range 20 {
		shuffled := slices.Clone(ws)
		slices.Reverse(shuffled)
		shuffled[0], shuffled[2] = shuffled[2], shuffled[0]
		if got := MakePlan(PlanInput{Model: bigModel, Head: head(cpu(8 * gib)), Workers: shuffled, Protocol: "8.0.0"}).String(); got != want {
			t.Fatalf("plan changed with worker order:\n%s\nwant\n%s", got, want)
		}
		ws = append(ws[1:], ws[0])
	}
}

// The speed model ranks what the lab measured: lavapipe far below the CPU
// it runs on, a GPU far above it, and a worker's round trips costing more
// the farther it is.
func TestSpeedModelRanks(t *testing.T) {
	predict := func(in PlanInput) float64 {
		in.Protocol = "8.0.0"
		p := MakePlan(in)
		if !p.Fits {
			t.Fatalf("does not fit: %s", p.Reason)
		}
		return p.TokensPerSecond
	}
	lava := PlanDevice{Name: "Vulkan0", Backend: "Vulkan", Description: "llvmpipe", Offer: 8 * gib, Speed: lavapipe}
	onCPU := predict(PlanInput{Model: tinyModel, Head: head(cpu(8 * gib))})
	onLava := predict(PlanInput{Model: tinyModel, Head: head(cpu(8*gib), lava), Devices: []string{"Vulkan0"}})
	if onLava*5 > onCPU {
		t.Errorf("lavapipe %.0f tok/s, CPU %.0f tok/s: lavapipe should be many times slower", onLava, onCPU)
	}
	big := uniformModel(32, 200*mib, 8*mib, 500*mib, 300*mib)
	cpuOnly := predict(PlanInput{Model: big, Head: head(cpu(32 * gib))})
	withGPU := predict(PlanInput{Model: big, Head: head(cpu(32*gib), gpu("CUDA0", 24*gib, gpuSpeed))})
	if withGPU < 10*cpuOnly {
		t.Errorf("a GPU gives %.1f tok/s against the CPU's %.1f: want it far faster", withGPU, cpuOnly)
	}
	near := worker("a", gpu("CUDA0", 24*gib, gpuSpeed))
	far := near
	far.RTT = 40 * time.Millisecond
	viaNear := predict(PlanInput{Model: big, Head: head(cpu(2 * gib)), Workers: []Candidate{near}})
	viaFar := predict(PlanInput{Model: big, Head: head(cpu(2 * gib)), Workers: []Candidate{far}})
	if viaFar >= viaNear || viaNear >= withGPU {
		t.Errorf("a local GPU %.1f, one a millisecond away %.1f, 40 ms away %.1f tok/s: want them in that order", withGPU, viaNear, viaFar)
	}
}

func TestPlanShareLayersSums(t *testing.T) {
	for layers := range 12 {
		for n := 1; n <= 6; n++ {
			weights := make([]uint64, n)
			for i := range weights {
				weights[i] = uint64(i*i+1) * gib
			}
			shares := shareLayers(layers, weights, gib)
			sum := 0
			for i, s := range shares {
				sum += s
				if i > 0 && layers >= n-1 && s < 1 {
					t.Errorf("%d layers over %v: index %d gets none", layers, shares, i)
				}
			}
			if sum != layers {
				t.Errorf("%d layers over %d nodes: shares %v add up to %d", layers, n, shares, sum)
			}
		}
	}
	if got := shareLayers(3, []uint64{0, 0, 0}, gib); !slices.Equal(got, []int{1, 1, 1}) {
		t.Errorf("zero weights: %v, want equal shares", got)
	}
}

func TestPlanString(t *testing.T) {
	p := MakePlan(PlanInput{
		Model: bigModel, Head: head(cpu(16 * gib)), Protocol: "8.0.0",
		Workers: []Candidate{worker("b", gpu("CUDA0", 32*gib, gpuSpeed)), speaking(worker("x", cpu(32*gib)), "7.0.0")},
	})
	s := p.String()
	for _, want := range []string{
		"model test-model (split fit): fits on 2 nodes, 1 device besides the CPU",
		"needs 42.0 GiB of 48.0 GiB offered; predicted",
		"CPU [this node]", "node-b (b) CUDA0 (a CUDA GPU) as RPC0", "10.0 GiB", "32.0 GiB", "31+output",
		"network round trips",
		"left out node-x (x): speaks llama.cpp RPC 7.0.0, this node 8.0.0",
		"llama-server: --device RPC0 --n-gpu-layers 32 --tensor-split 32, 1 worker over RPC",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	no := MakePlan(PlanInput{Model: bigModel, Head: head(cpu(gib)), Protocol: "8.0.0"}).String()
	if !strings.Contains(no, "does not fit: needs 41.5 GiB, pool offers 1.0 GiB (1 device on 1 node)") || strings.Contains(no, "llama-server:") {
		t.Errorf("summary of a plan that does not fit:\n%s", no)
	}
}

func TestPlanParseSplitMode(t *testing.T) {
	for in, want := range map[string]SplitMode{"": SplitFit, "fit": SplitFit, "ALL": SplitAll, " all ": SplitAll} {
		if got, err := ParseSplitMode(in); err != nil || got != want {
			t.Errorf("ParseSplitMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseSplitMode("most"); err == nil || !strings.Contains(err.Error(), `"most"`) {
		t.Errorf("ParseSplitMode(most) error = %v", err)
	}
}

func TestPlanFormatBytes(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{gib - 1, "1.0 GiB"},
		{412 * gib / 10, "41.2 GiB"},
		{30*gib + gib/2, "30.5 GiB"},
		{1 << 62, "4.0 EiB"},
	} {
		if got := size.Format(tc.n); got != tc.want {
			t.Errorf("size.Format(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
