// Command netsh stands in for Windows' netsh under Wine, whose own is a
// stub that records nothing: it appends its command line, less its own
// name, one call a line, to the file POTLUCK_NETSH_LOG names, so a test can
// see the firewall rules an installer asks for, quoted as netsh gets them.
package main

import (
	"os"
	"strings"

	"golang.org/x/sys/windows"
)

func main() {
	cl := windows.UTF16PtrToString(windows.GetCommandLine())
	if strings.HasPrefix(cl, `"`) {
		if i := strings.Index(cl[1:], `"`); i >= 0 {
			cl = cl[i+2:]
		}
	} else if i := strings.IndexByte(cl, ' '); i >= 0 {
		cl = cl[i:]
	} else {
		cl = ""
	}
	f, err := os.OpenFile(os.Getenv("POTLUCK_NETSH_LOG"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		os.Exit(1)
	}
	defer f.Close()
	f.WriteString(strings.TrimSpace(cl) + "\n")
}
