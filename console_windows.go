package main

import (
	"os"

	"golang.org/x/sys/windows"
)

// attachConsole gives the command line its output back: the Windows build is
// a GUI program (no console window for the tray), so a `potluck run` or
// `potluck version` typed in a terminal writes to that terminal's console,
// unless its output is already redirected.
func attachConsole() {
	if h, err := windows.GetStdHandle(windows.STD_OUTPUT_HANDLE); err == nil && h != 0 && h != windows.InvalidHandle {
		return // redirected to a file or pipe
	}
	const attachParentProcess = ^uintptr(0)
	proc := windows.NewLazySystemDLL("kernel32.dll").NewProc("AttachConsole")
	if r, _, _ := proc.Call(attachParentProcess); r == 0 {
		return // started from Explorer: no console to attach to
	}
	if f, err := os.OpenFile("CONOUT$", os.O_WRONLY, 0); err == nil {
		os.Stdout, os.Stderr = f, f
	}
}
