package engine

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/internal/memcg"
)

// A child the kernel's out-of-memory killer ends is named as such, not as a
// bare "signal: killed" that reads like someone else's doing.
func TestSupervisorNamesTheOOMKiller(t *testing.T) {
	g, err := memcg.New("potluck-"+t.Name(), 64<<20)
	if err != nil {
		t.Skipf("no memory cgroup to test in: %v", err)
	}
	t.Cleanup(func() { g.Close() })
	spec, _ := childSpec(t, "serve-then-grow")
	command := spec.Command
	spec.Command = func(ctx context.Context) (*exec.Cmd, error) {
		cmd, err := command(ctx)
		if err == nil {
			cmd.Env = append(cmd.Env, "CGROUP_PROCS="+g.Procs())
		}
		return cmd, err
	}
	spec.Exited = func(error, []string) bool { return false }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = NewSupervisor(spec).Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "killed by the out-of-memory killer") {
		t.Fatalf("Run = %v; want the exit named as the out-of-memory killer's", err)
	}
	if n := g.OOMKills(); n != 1 {
		t.Errorf("the cgroup counts %d out-of-memory kills, want 1", n)
	}
	t.Log(err)
}
