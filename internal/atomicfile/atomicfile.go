// Package atomicfile replaces files so that a crash or a power cut leaves
// the old content or the new one, never half of either.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
)

// Write replaces name with data. The file has mode perm from the start, so a
// secret is never readable by others, not even briefly. The data reaches the
// disk before the rename, and the rename before Write returns. A full disk
// leaves the old file as it was, and the error says where space is needed.
func Write(name string, data []byte, perm fs.FileMode) error {
	err := write(name, data, perm)
	if DiskFull(err) {
		return fmt.Errorf("the disk holding %s is full; free some space there: %w", filepath.Dir(name), err)
	}
	return err
}

// DiskFull says whether err is a write that found its disk full.
func DiskFull(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	// ERROR_HANDLE_DISK_FULL and ERROR_DISK_FULL on Windows.
	return errno == syscall.ENOSPC || runtime.GOOS == "windows" && (errno == 39 || errno == 112)
}

func write(name string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable. Windows cannot open directories for
// syncing; there, NTFS journals the rename.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Private says whether a file is its owner's alone: mode 0600, as Write with
// that mode leaves it. On Windows, files have no Unix modes: what keeps
// them private is the access list of the folder they are in (the user's
// profile, for Potluck's), so every file passes there.
func Private(fi fs.FileInfo) bool {
	return runtime.GOOS == "windows" || fi.Mode().Perm() == 0o600
}
