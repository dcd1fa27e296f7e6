package sandbox

import (
	"fmt"
	"strconv"
	"strings"
)

// Profile is p as a macOS sandbox profile (the Sandbox Profile Language
// that sandbox-exec reads): nothing is allowed but what p grants and what
// any program needs of the system (its libraries, the dynamic loader's
// cache, the GPU through Metal). It lets the child start no process and
// read no home folder. It is written from Apple's documented operations and
// the profiles macOS ships in /System/Library/Sandbox/Profiles; it has not
// been run on a Mac by Potluck's tests.
func Profile(p Policy) string {
	var b strings.Builder
	b.WriteString("(version 1)\n(deny default)\n")
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	for _, exe := range p.Exec {
		line("(allow process-exec (literal %s))", quote(exe))
		line("(allow file-read* (literal %s))", quote(exe))
	}
	read := append([]string(nil), p.Read...)
	if p.System {
		read = append(read, "/usr/lib", "/usr/share", "/System/Library", "/Library/Apple", "/private/var/db/dyld",
			"/private/var/db/timezone", "/private/etc/localtime", "/dev/null", "/dev/urandom", "/dev/random")
		line("(allow file-read-metadata)")   // stat() on the way to what it may read
		line("(allow sysctl-read)")          // CPU and memory sizes
		line("(allow mach-lookup)")          // Metal's compiler service and the GPU driver's
		line("(allow iokit-open)")           // the GPU
		line("(allow ipc-posix-shm)")        // Metal's shared buffers
		line("(allow process-info-pidinfo)") // its own
	}
	for _, path := range read {
		line("(allow file-read* (subpath %s))", quote(path))
	}
	for _, path := range p.Write {
		line("(allow file-read* file-write* (subpath %s))", quote(path))
	}
	for _, port := range p.Bind {
		line("(allow network-bind network-inbound (local ip \"localhost:%d\"))", port)
	}
	for _, port := range p.Connect {
		line("(allow network-outbound (remote ip \"localhost:%d\"))", port)
	}
	return b.String()
}

// quote writes s as a profile's string literal.
func quote(s string) string { return strconv.Quote(s) }
