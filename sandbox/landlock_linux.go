package sandbox

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Landlock's access rights, by the ABI version that brought them.
const (
	fsV1 = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_READ_FILE |
		unix.LANDLOCK_ACCESS_FS_READ_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE |
		unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_DIR | unix.LANDLOCK_ACCESS_FS_MAKE_REG |
		unix.LANDLOCK_ACCESS_FS_MAKE_SOCK | unix.LANDLOCK_ACCESS_FS_MAKE_FIFO | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_SYM
	fsV2 = fsV1 | unix.LANDLOCK_ACCESS_FS_REFER
	fsV3 = fsV2 | unix.LANDLOCK_ACCESS_FS_TRUNCATE
	fsV5 = fsV3 | unix.LANDLOCK_ACCESS_FS_IOCTL_DEV

	// The rights that apply to a file, not a folder.
	fileRights = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_READ_FILE |
		unix.LANDLOCK_ACCESS_FS_TRUNCATE | unix.LANDLOCK_ACCESS_FS_IOCTL_DEV

	readRights  = unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR
	writeRights = fsV3 &^ (unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_REFER |
		unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK)
	execRights   = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_READ_FILE
	deviceRights = unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE |
		unix.LANDLOCK_ACCESS_FS_READ_DIR | unix.LANDLOCK_ACCESS_FS_IOCTL_DEV

	netBind    = unix.LANDLOCK_ACCESS_NET_BIND_TCP
	netConnect = unix.LANDLOCK_ACCESS_NET_CONNECT_TCP

	scopes = unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | unix.LANDLOCK_SCOPE_SIGNAL

	ruleNetPort = 2 // LANDLOCK_RULE_NET_PORT
)

// netPortAttr is struct landlock_net_port_attr.
type netPortAttr struct {
	Allowed uint64
	Port    uint64
}

// landlockABI returns the kernel's Landlock ABI version, 0 without it.
func landlockABI() int {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		return 0
	}
	return int(v)
}

// handled returns what a ruleset handles on a kernel of ABI abi: every
// right it knows, so that what no rule grants is denied.
func handled(abi int) unix.LandlockRulesetAttr {
	var a unix.LandlockRulesetAttr
	switch {
	case abi >= 5:
		a.Access_fs = fsV5
	case abi >= 3:
		a.Access_fs = fsV3
	case abi == 2:
		a.Access_fs = fsV2
	default:
		a.Access_fs = fsV1
	}
	if abi >= 4 {
		a.Access_net = netBind | netConnect
	}
	if abi >= 6 {
		a.Scoped = scopes
	}
	return a
}

// restrictLandlock confines the calling thread, and what it executes, to
// p's files and ports. It does nothing on a kernel without Landlock.
func restrictLandlock(abi int, p Policy) error {
	if abi < 1 {
		return nil
	}
	// An older kernel takes the whole struct as long as what it does not
	// know is zero, as handled leaves it.
	attr := handled(abi)
	fd, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0)
	if errno != 0 {
		return fmt.Errorf("landlock_create_ruleset: %w", errno)
	}
	defer unix.Close(int(fd))
	add := func(paths []string, rights uint64) error {
		for _, path := range paths {
			if err := addPath(int(fd), path, rights&attr.Access_fs); err != nil {
				return err
			}
		}
		return nil
	}
	for _, r := range []struct {
		paths  []string
		rights uint64
	}{
		{p.Exec, execRights}, {p.Read, readRights}, {p.Write, writeRights | readRights}, {p.Devices, deviceRights},
	} {
		if err := add(r.paths, r.rights); err != nil {
			return err
		}
	}
	if attr.Access_net != 0 {
		for _, r := range []struct {
			ports  []uint16
			rights uint64
		}{{p.Bind, netBind}, {p.Connect, netConnect}} {
			for _, port := range r.ports {
				rule := netPortAttr{Allowed: r.rights, Port: uint64(port)}
				if _, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, fd, ruleNetPort, uintptr(unsafe.Pointer(&rule)), 0, 0, 0); errno != 0 {
					return fmt.Errorf("landlock: port %d: %w", port, errno)
				}
			}
		}
	}
	if _, _, errno := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0); errno != 0 {
		return fmt.Errorf("landlock_restrict_self: %w", errno)
	}
	return nil
}

// addPath grants rights beneath path, those of a file where it is one. A
// path that does not exist is skipped.
func addPath(ruleset int, path string, rights uint64) error {
	f, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return nil
	}
	if err != nil {
		return fmt.Errorf("landlock: %s: %w", path, err)
	}
	defer unix.Close(f)
	var st unix.Stat_t
	if err := unix.Fstat(f, &st); err != nil {
		return fmt.Errorf("landlock: %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		rights &= fileRights
	}
	if rights == 0 {
		return nil
	}
	rule := unix.LandlockPathBeneathAttr{Allowed_access: rights, Parent_fd: int32(f)}
	if _, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(ruleset), unix.LANDLOCK_RULE_PATH_BENEATH, uintptr(unsafe.Pointer(&rule)), 0, 0, 0); errno != 0 {
		return fmt.Errorf("landlock: %s: %w", path, os.NewSyscallError("landlock_add_rule", errno))
	}
	return nil
}
