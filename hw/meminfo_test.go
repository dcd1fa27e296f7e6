package hw

import (
	"os"
	"testing"
)

func TestParseMeminfo(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile("testdata/meminfo/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name       string
		in         string
		total, avl uint64
		wantErr    bool
	}{
		{name: "2 vCPU 24 GiB VM", in: read("vm-2cpu-24g.txt"), total: 24684084 * KiB, avl: 23968196 * KiB},
		{name: "ghw snapshot with a Tesla P100", in: read("snapshot-p100.txt"), total: 30601816 * KiB, avl: 29987976 * KiB},
		{
			name:  "kernel before 3.14, no MemAvailable",
			in:    "MemTotal:  2048 kB\nMemFree:  512 kB\nBuffers:  128 kB\nCached:  256 kB\n",
			total: 2048 * KiB, avl: 896 * KiB,
		},
		{
			name:  "available above total is clamped",
			in:    "MemTotal: 100 kB\nMemAvailable: 200 kB\n",
			total: 100 * KiB, avl: 100 * KiB,
		},
		{name: "garbage lines are skipped", in: "junk\nMemTotal: x kB\nMemTotal: 4 kB\nHugePages_Total: 0\n", total: 4 * KiB, avl: 0},
		{name: "empty", in: "", wantErr: true},
		{name: "no MemTotal", in: "MemFree: 10 kB\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			total, avl, err := parseMeminfo([]byte(tt.in))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseMeminfo = %d, %d; want an error", total, avl)
				}
				return
			}
			if err != nil || total != tt.total || avl != tt.avl {
				t.Fatalf("parseMeminfo = %d, %d, %v; want %d, %d", total, avl, err, tt.total, tt.avl)
			}
		})
	}
}
