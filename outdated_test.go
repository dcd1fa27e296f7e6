package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/potluck-gpu/potluck/internal/nodetest"
	"github.com/potluck-gpu/potluck/runtimes"
	"github.com/potluck-gpu/potluck/runtimes/runtimestest"
)

// A machine that runs a llama.cpp older than the one this Potluck pins is
// told so, and what to do: by `potluck engine status`, and in the node's
// status, which the tray and the web page show.
func TestOlderBuildIsWarnedOf(t *testing.T) {
	b := runtimestest.Binaries(t, "linux")
	if !runtimes.Older(b.Version, runtimes.DefaultVersion) {
		t.Skipf("the build here, %s, is not older than %s", b.Version, runtimes.DefaultVersion)
	}
	env := []string{"POTLUCK_LLAMA_DIR=" + b.Dir}
	cmd := exec.Command(nodetest.Binary(t), "engine", "status")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	want := "runs llama.cpp " + b.Version + ", older than " + runtimes.DefaultVersion
	if err != nil || !strings.Contains(string(out), want) || !strings.Contains(string(out), "potluck engine install") {
		t.Errorf("engine status with llama.cpp %s: %v, no %q:\n%s", b.Version, err, want, out)
	}
	p := startPotluckEnv(t, env)
	p.WaitStatus(t, "the warning", func(st map[string]any) bool {
		return slices.ContainsFunc(warningCodes(st), func(w string) bool {
			return strings.HasPrefix(w, "llama-outdated: ") && strings.Contains(w, want)
		})
	})
}
