package nodetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// binPrefix starts the name of the folder a process builds the binary in;
// the process id follows, so that a later run can tell a folder whose
// process is gone.
const binPrefix = "potluck-nodetest-"

var build struct {
	once sync.Once
	path string
	err  error
}

// Build builds the potluck command once per process, from the module this
// package belongs to, and returns its path. The first call also removes the
// binaries of earlier runs whose process has ended.
func Build() (string, error) {
	build.once.Do(func() {
		removeOldBinaries()
		root, err := ModuleRoot()
		if err != nil {
			build.err = err
			return
		}
		dir := filepath.Join(os.TempDir(), binPrefix+strconv.Itoa(os.Getpid()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			build.err = err
			return
		}
		bin := filepath.Join(dir, "potluck")
		if runtime.GOOS == "windows" {
			bin += ".exe"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
		cmd.Dir = root
		dieWithParent(cmd)
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		build.path = bin
	})
	return build.path, build.err
}

// Binary is Build for a test: it fails the test when the build fails.
func Binary(t TB) string {
	t.Helper()
	bin, err := Build()
	if err != nil {
		t.Fatalf("%v", err)
	}
	return bin
}

// RemoveBinary deletes what Build built, for a TestMain to call after the
// tests. A run that dies first leaves it to the next run to remove.
func RemoveBinary() {
	if build.path != "" {
		os.RemoveAll(filepath.Dir(build.path))
	}
}

// removeOldBinaries deletes the folders of builds whose process is over.
func removeOldBinaries() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), binPrefix+"*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), binPrefix))
		if err == nil && pid != os.Getpid() && !alive(pid) {
			os.RemoveAll(d)
		}
	}
}

// ModuleRoot is the folder of the potluck module, whatever the caller's
// working directory: the one this file was compiled from.
func ModuleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("nodetest: no source path to find the module by")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("nodetest: the module is not where this package was built from: %w", err)
	}
	return filepath.Clean(root), nil
}
