package hw

import (
	"context"
	"errors"
	"os"
	"path"
	"reflect"
	"strings"
	"testing"
)

// fakeCommands answers sysctl and vm_stat from files under testdata/darwin.
func fakeCommands(t *testing.T, machine string) func(context.Context, string, ...string) ([]byte, error) {
	t.Helper()
	return func(_ context.Context, name string, args ...string) ([]byte, error) {
		name = path.Base(name)
		if name == "sysctl" && !reflect.DeepEqual(args, darwinSysctlKeys) {
			return nil, errors.New("unexpected sysctl keys " + strings.Join(args, " "))
		}
		return os.ReadFile("testdata/darwin/" + machine + "-" + name + ".txt")
	}
}

func TestDarwinProbe(t *testing.T) {
	tests := []struct {
		machine string
		want    Report
	}{
		{
			machine: "m2pro",
			want: Report{
				CPU:    CPU{Model: "Apple M2 Pro", PhysicalCores: 12, LogicalCores: 12},
				Memory: Memory{TotalBytes: 32 * GiB, AvailableBytes: 10782687232},
				GPUs: []GPU{{
					Vendor: VendorApple, Name: "Apple M2 Pro GPU", Backend: BackendMetal,
					VRAMTotal: 32 * GiB, VRAMFree: 10782687232, VRAMUsed: 32*GiB - 10782687232, VRAMKnown: true,
					Utilization: Unknown, TemperatureC: Unknown, UnifiedMemory: true,
				}},
			},
		},
		{
			machine: "intel",
			want: Report{
				CPU:    CPU{Model: "Intel(R) Core(TM) i9-9880H CPU @ 2.30GHz", PhysicalCores: 8, LogicalCores: 16},
				Memory: Memory{TotalBytes: 16 * GiB, AvailableBytes: 4305715200},
				Notes:  []string{"GPUs of Intel Macs are not probed"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.machine, func(t *testing.T) {
			var r Report
			if err := darwinProbe(context.Background(), fakeCommands(t, tt.machine), &r, true); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r, tt.want) {
				t.Fatalf("darwinProbe:\n got %+v\nwant %+v", r, tt.want)
			}
		})
	}
}

func TestDarwinRefreshUpdatesUnifiedGPU(t *testing.T) {
	var r Report
	cmd := fakeCommands(t, "m2pro")
	if err := darwinProbe(context.Background(), cmd, &r, true); err != nil {
		t.Fatal(err)
	}
	lessFree := func(ctx context.Context, name string, args ...string) ([]byte, error) {
		if name == darwinSysctl {
			t.Fatal("a refresh ran sysctl")
		}
		b, err := cmd(ctx, name, args...)
		return []byte(strings.Replace(string(b), "Pages inactive:                          650000.", "Pages inactive:                          100000.", 1)), err
	}
	if err := darwinProbe(context.Background(), lessFree, &r, false); err != nil {
		t.Fatal(err)
	}
	want := uint64(8123+100000) * 16384
	if r.Memory.AvailableBytes != want || r.GPUs[0].VRAMFree != want || r.GPUs[0].VRAMUsed != 32*GiB-want {
		t.Fatalf("after refresh: memory %+v, GPU %+v; want %d available and free", r.Memory, r.GPUs[0], want)
	}
}

func TestDarwinProbeErrors(t *testing.T) {
	tests := []struct {
		name   string
		sysctl string
		vmstat string
	}{
		{name: "no memsize", sysctl: "hw.logicalcpu: 8\n", vmstat: "Mach Virtual Memory Statistics: (page size of 4096 bytes)\nPages free: 1.\nPages inactive: 1.\n"},
		{name: "vm_stat without page size", sysctl: "hw.memsize: 1024\n", vmstat: "Pages free: 1.\nPages inactive: 1.\n"},
		{name: "vm_stat without inactive", sysctl: "hw.memsize: 1024\n", vmstat: "Mach Virtual Memory Statistics: (page size of 4096 bytes)\nPages free: 1.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := func(_ context.Context, name string, _ ...string) ([]byte, error) {
				if name == darwinSysctl {
					return []byte(tt.sysctl), nil
				}
				return []byte(tt.vmstat), nil
			}
			var r Report
			if err := darwinProbe(context.Background(), cmd, &r, true); err == nil {
				t.Fatalf("darwinProbe = nil error, report %+v", r)
			}
		})
	}
}
