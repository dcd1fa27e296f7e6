package hw

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// smiGPU is one line of
// nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader,nounits
// with memory in MiB.
type smiGPU struct {
	Name              string
	TotalMiB, UsedMiB uint64
}

func parseNvidiaSMI(out string) ([]smiGPU, error) {
	var gpus []smiGPU
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 3 {
			return nil, fmt.Errorf("nvidia-smi line %q: want name, memory.total, memory.used", line)
		}
		n := len(f)
		total, err1 := strconv.ParseUint(strings.TrimSpace(f[n-2]), 10, 64)
		used, err2 := strconv.ParseUint(strings.TrimSpace(f[n-1]), 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("nvidia-smi line %q: memory is not a number of MiB (use nounits)", line)
		}
		gpus = append(gpus, smiGPU{Name: strings.TrimSpace(strings.Join(f[:n-2], ",")), TotalMiB: total, UsedMiB: used})
	}
	return gpus, nil
}

func TestParseNvidiaSMI(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    []smiGPU
		wantErr bool
	}{
		{name: "no GPU", out: "\n"},
		{name: "1 NVIDIA", out: "NVIDIA GeForce RTX 4090, 24564, 1023\n", want: []smiGPU{{"NVIDIA GeForce RTX 4090", 24564, 1023}}},
		{
			name: "2 NVIDIA",
			out:  "NVIDIA H100 80GB HBM3, 81559, 0\nNVIDIA H100 80GB HBM3, 81559, 40213\n",
			want: []smiGPU{{"NVIDIA H100 80GB HBM3", 81559, 0}, {"NVIDIA H100 80GB HBM3", 81559, 40213}},
		},
		{name: "units left in", out: "Tesla T4, 15360 MiB, 0 MiB\n", wantErr: true},
		{name: "error text", out: "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseNvidiaSMI(tt.out)
		if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: parseNvidiaSMI = %+v, %v; want %+v, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}
