package hw

import "testing"

func TestChanged(t *testing.T) {
	base := machines["2 NVIDIA"]
	with := func(f func(r *Report)) Report {
		r := base
		r.GPUs = append([]GPU(nil), base.GPUs...)
		f(&r)
		return r
	}
	const th = 256 * MiB
	tests := []struct {
		name string
		b    Report
		want bool
	}{
		{name: "same", b: base, want: false},
		{name: "utilization and temperature only", b: with(func(r *Report) { r.GPUs[0].Utilization, r.GPUs[1].TemperatureC = 5, 80 }), want: false},
		{name: "RAM within threshold", b: with(func(r *Report) { r.Memory.AvailableBytes -= th }), want: false},
		{name: "RAM beyond threshold", b: with(func(r *Report) { r.Memory.AvailableBytes -= th + 1 }), want: true},
		{name: "RAM up beyond threshold", b: with(func(r *Report) { r.Memory.AvailableBytes += GiB }), want: true},
		{name: "VRAM within threshold", b: with(func(r *Report) { r.GPUs[1].VRAMFree -= 100 * MiB }), want: false},
		{name: "VRAM beyond threshold", b: with(func(r *Report) { r.GPUs[1].VRAMFree -= 2 * GiB }), want: true},
		{name: "GPU gone", b: with(func(r *Report) { r.GPUs = r.GPUs[:1] }), want: true},
		{name: "GPU replaced", b: with(func(r *Report) { r.GPUs[0].UUID = "GPU-cccc" }), want: true},
		{name: "VRAM became unknown", b: with(func(r *Report) { r.GPUs[0].VRAMKnown = false }), want: true},
	}
	for _, tt := range tests {
		if got := Changed(base, tt.b, th); got != tt.want {
			t.Errorf("%s: Changed = %v, want %v", tt.name, got, tt.want)
		}
	}
}
