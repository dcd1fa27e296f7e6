package sandbox

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Where systemd can make a scope with a memory limit, a child started with
// Policy.Memory runs in one with that limit; elsewhere Wrap leaves the cap
// out and Supported says why.
func TestMemoryCap(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1)")
	}
	const max = 300 << 20
	prog, argv, penv, err := Wrap(self, Policy{Memory: max, Exec: []string{sleep}, System: true}, sleep, []string{"30"})
	if err != nil {
		t.Fatal(err)
	}
	_, scopeErr := memoryScope()
	if scopeErr != nil {
		if prog != self {
			t.Errorf("without a scope to put it in, the child starts through %s", prog)
		}
		if why := Supported().NoMemoryCap; !strings.Contains(why, scopeErr.Error()) {
			t.Errorf("Supported().NoMemoryCap = %q, want the reason %q", why, scopeErr)
		}
		t.Logf("no memory cap here: %v", scopeErr)
		return
	}
	cmd := exec.Command(prog, argv...)
	cmd.Env = append(os.Environ(), penv)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var cg string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if exe, _ := os.Readlink("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/exe"); exe == sleep {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cgroup")
			cg = strings.TrimPrefix(strings.TrimSpace(string(b)), "0::")
			break
		}
	}
	if !strings.HasSuffix(cg, ".scope") {
		t.Fatalf("the child is in cgroup %q, not a scope of its own", cg)
	}
	b, err := os.ReadFile("/sys/fs/cgroup" + cg + "/memory.max")
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(max) {
		t.Errorf("the scope's memory.max: %q, %v; want %d", b, err, max)
	}
}
