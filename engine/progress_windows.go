package engine

import (
	"unsafe"

	"golang.org/x/sys/windows"
)

// ioCounters is IO_COUNTERS from winnt.h.
type ioCounters struct {
	ReadOperationCount, WriteOperationCount, OtherOperationCount uint64
	ReadTransferCount, WriteTransferCount, OtherTransferCount    uint64
}

var procGetProcessIoCounters = windows.NewLazySystemDLL("kernel32.dll").NewProc("GetProcessIoCounters")

// procProgress is a counter that moves while process pid works: its CPU
// time in 10 ms ticks, as Linux counts it (in finer units, a sleeping
// process's housekeeping would count as work), plus the bytes it read and
// wrote. ok is false when the process cannot be read.
func procProgress(pid int) (uint64, bool) {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return 0, false
	}
	defer windows.CloseHandle(h)
	var created, exited, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(h, &created, &exited, &kernel, &user); err != nil {
		return 0, false
	}
	ft := func(f windows.Filetime) uint64 { return uint64(f.HighDateTime)<<32 | uint64(f.LowDateTime) }
	n := (ft(kernel) + ft(user)) / 100_000 // 100 ns units to 10 ms ticks
	var io ioCounters
	if r, _, _ := procGetProcessIoCounters.Call(uintptr(h), uintptr(unsafe.Pointer(&io))); r != 0 {
		n += io.ReadTransferCount + io.WriteTransferCount
	}
	return n, true
}
