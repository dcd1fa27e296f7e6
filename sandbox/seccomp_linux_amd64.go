package sandbox

import "golang.org/x/sys/unix"

const (
	archSupported = true
	auditArch     = unix.AUDIT_ARCH_X86_64
)

// archDenied are amd64's own calls to refuse: new processes the old way,
// and port I/O.
var archDenied = []uintptr{unix.SYS_FORK, unix.SYS_VFORK, unix.SYS_IOPL, unix.SYS_IOPERM}

// archChecks kills a call of the x32 ABI, which shares the arch value and
// numbers its calls from bit 30. The system call number is loaded.
func archChecks() []unix.SockFilter {
	return []unix.SockFilter{
		jump(unix.BPF_JMP|unix.BPF_JGE|unix.BPF_K, 0x40000000, 0, 1),
		ret(unix.SECCOMP_RET_KILL_PROCESS),
	}
}
