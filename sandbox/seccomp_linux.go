package sandbox

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The filter answers EPERM (or ENOSYS, where a library falls back) to what
// serving a model never needs, so that a driver that probes for something
// degrades instead of dying, and kills the process on a system call of
// another architecture, which only an exploit makes. What files and ports
// the child may use is Landlock's part; the filter closes what Landlock
// leaves open on older kernels: sockets other than TCP (UDP before ABI 10,
// Unix sockets before ABI 9, MPTCP at all).

// denied are the system calls answered EPERM, besides the arch's own.
var denied = []uintptr{
	// Other processes, and the kernel's own state.
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV, unix.SYS_PIDFD_GETFD, unix.SYS_KCMP,
	unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD, unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
	unix.SYS_REBOOT, unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_ACCT, unix.SYS_SETTIMEOFDAY, unix.SYS_CLOCK_SETTIME,
	unix.SYS_SYSLOG, unix.SYS_QUOTACTL, unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD,
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY, unix.SYS_FANOTIFY_INIT,
	// Mounts and namespaces.
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT, unix.SYS_MOVE_MOUNT, unix.SYS_OPEN_TREE,
	unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK, unix.SYS_MOUNT_SETATTR,
	unix.SYS_UNSHARE, unix.SYS_SETNS,
	// Files by handle, past any path rule.
	unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_NAME_TO_HANDLE_AT,
}

// unimplemented are answered ENOSYS: glibc then starts threads with clone,
// which the filter checks, and libraries do without io_uring.
var unimplemented = []uintptr{unix.SYS_CLONE3, unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER}

// Offsets in struct seccomp_data; an argument's low 32 bits (little-endian
// machines), which is all the kernel reads of an int argument.
const (
	dataNr   = 0
	dataArch = 4
)

func dataArg(i int) uint32 { return 16 + 8*uint32(i) }

func stmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }

func jump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

func load(off uint32) unix.SockFilter { return stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, off) }
func ret(v uint32) unix.SockFilter    { return stmt(unix.BPF_RET|unix.BPF_K, v) }

var (
	retAllow = ret(unix.SECCOMP_RET_ALLOW)
	retEPERM = ret(unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM))
)

// ifNr runs block when the system call is nr, and goes on after it
// otherwise. block must end in a return and be under 256 instructions.
func ifNr(nr uintptr, block ...unix.SockFilter) []unix.SockFilter {
	return append([]unix.SockFilter{load(dataNr), jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, uint32(nr), 0, uint8(len(block)))}, block...)
}

// filter is the program the launcher installs.
func filter() []unix.SockFilter {
	prog := []unix.SockFilter{
		load(dataArch),
		jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, auditArch, 1, 0),
		ret(unix.SECCOMP_RET_KILL_PROCESS),
		load(dataNr),
	}
	prog = append(prog, archChecks()...)
	// Every system call runs through this: the plain answers come first,
	// two instructions each, on the number loaded once.
	answer := func(nrs []uintptr, r unix.SockFilter) {
		for _, nr := range nrs {
			prog = append(prog, jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, uint32(nr), 0, 1), r)
		}
	}
	answer(append(denied, archDenied...), retEPERM)
	answer(unimplemented, ret(unix.SECCOMP_RET_ERRNO|uint32(unix.ENOSYS)))
	// clone only for a thread: no new process, so that executing another
	// program can only replace this one, inside the same limits.
	prog = append(prog, ifNr(unix.SYS_CLONE,
		load(dataArg(0)),
		jump(unix.BPF_JMP|unix.BPF_JSET|unix.BPF_K, unix.CLONE_THREAD, 0, 1),
		retAllow,
		retEPERM,
	)...)
	// socket: TCP over IPv4 and IPv6, and netlink (glibc asks it for the
	// machine's addresses); nothing else.
	prog = append(prog, ifNr(unix.SYS_SOCKET,
		load(dataArg(0)),
		jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, unix.AF_NETLINK, 0, 1),
		retAllow,
		jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, unix.AF_INET, 1, 0),
		jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, unix.AF_INET6, 0, 7),
		load(dataArg(1)),
		stmt(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, 0xf), // the type without SOCK_CLOEXEC and SOCK_NONBLOCK
		jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, unix.SOCK_STREAM, 0, 4),
		load(dataArg(2)),
		jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, 0, 1, 0),
		jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, unix.IPPROTO_TCP, 0, 1),
		retAllow,
		retEPERM,
	)...)
	return append(prog, retAllow)
}

// installSeccomp sets the filter on the calling thread, which must have
// no_new_privs set; it holds across execve.
func installSeccomp() error {
	prog := filter()
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		return fmt.Errorf("seccomp: %w", errno)
	}
	return nil
}

// seccompAvailable says whether the kernel takes filters.
func seccompAvailable() bool {
	_, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	return err == nil
}
