package labtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary builds potluck once per test binary and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		removeOldBinaries()
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("%sbin-%d", namePrefix, os.Getpid()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "potluck")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", binPath, "github.com/potluck-gpu/potluck")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// RemoveBinary deletes the binary Binary built, for a TestMain to call after
// the tests. A run that dies first leaves it to the next run to remove.
func RemoveBinary() {
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
}

// removeOldBinaries deletes binaries built by lab runs that are over.
func removeOldBinaries() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), namePrefix+"bin-*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), namePrefix+"bin-"))
		if err == nil && pid != os.Getpid() && !processAlive(pid) {
			os.RemoveAll(d)
		}
	}
}
