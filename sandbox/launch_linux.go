package sandbox

import (
	"debug/elf"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Launches says whether the launcher confines children on this OS.
const Launches = true

// launch confines the calling thread and executes prog in its place. The
// thread stays locked: the limits are its own, and it is the one that
// executes the child.
func launch(p Policy, prog string, argv, env []string) error {
	runtime.LockOSThread()
	if p.System {
		p = p.withSystem()
	}
	p.Exec = withInterpreters(p.Exec)
	if p.Dir != "" {
		if err := unix.Chdir(p.Dir); err != nil {
			return fmt.Errorf("sandbox: %s: %w", p.Dir, err)
		}
	}
	if err := dropCapabilities(); err != nil {
		return fmt.Errorf("sandbox: dropping capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("sandbox: no_new_privs: %w", err)
	}
	if err := restrictLandlock(landlockABI(), p); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if archSupported && seccompAvailable() {
		if err := installSeccomp(); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
	}
	return fmt.Errorf("sandbox: executing %s: %w", prog, unix.Exec(prog, argv, env))
}

// withInterpreters adds to programs the dynamic loader each names: the
// kernel executes it too.
func withInterpreters(programs []string) []string {
	out := slices.Clone(programs)
	for _, prog := range programs {
		f, err := elf.Open(prog)
		if err != nil {
			continue
		}
		for _, ph := range f.Progs {
			if ph.Type != elf.PT_INTERP {
				continue
			}
			if b, err := io.ReadAll(ph.Open()); err == nil {
				if interp := strings.TrimRight(string(b), "\x00"); interp != "" && !slices.Contains(out, interp) {
					out = append(out, interp)
				}
			}
		}
		f.Close()
	}
	return out
}

// dropCapabilities leaves a process run as root with none: it keeps its
// user, whose files Landlock guards, but no power over other processes
// or the system. Ordinary users have none to drop.
func dropCapabilities() error {
	if unix.Geteuid() != 0 {
		return nil
	}
	// The bounding set goes where the process may change it (a container
	// may have taken CAP_SETPCAP away); no_new_privs and the empty sets
	// below keep the child from gaining any back either way.
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			break
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return err
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var none [2]unix.CapUserData
	return unix.Capset(&hdr, &none[0])
}

// withSystem adds what any llama.cpp child needs of a Linux system besides
// its runtime and models: shared libraries and the loader's cache, the
// kernel's description of CPUs and devices, GPU drivers' configuration,
// and the GPU device files. Nothing in it is secret, and it leaves out the
// rest of /etc and every home folder.
func (p Policy) withSystem() Policy {
	p.Read = append(p.Read,
		"/usr", "/lib", "/lib64", "/lib32", "/opt/rocm",
		"/proc", "/sys",
		"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
		"/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf",
		"/etc/vulkan", "/etc/xdg/vulkan", "/etc/OpenCL", "/etc/drirc", "/etc/glvnd",
	)
	p.Write = append(p.Write, "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
	p.Devices = append(p.Devices, "/dev/dri", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-caps", "/dev/kfd")
	nv, _ := filepath.Glob("/dev/nvidia[0-9]*")
	p.Devices = append(p.Devices, nv...)
	return p
}

// Supported says what this machine enforces of a policy.
func Supported() Support {
	s := Support{Landlock: landlockABI(), Seccomp: archSupported && seccompAvailable(), NoMemoryCap: memoryCapMissing()}
	switch {
	case s.Landlock == 0:
		s.Missing = "this kernel has no Landlock (Linux 5.13 or later, with landlock in the lsm= boot list): llama.cpp's children can read what this user can"
	case s.Landlock < 4:
		s.Missing = fmt.Sprintf("this kernel's Landlock (ABI %d) cannot limit TCP ports (Linux 6.7 or later can): llama.cpp's children may connect out", s.Landlock)
	case !s.Seccomp:
		s.Missing = "seccomp filters are not available here: llama.cpp's children may start processes"
	}
	return s
}
