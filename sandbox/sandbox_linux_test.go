package sandbox_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/potluck-gpu/potluck/sandbox"
	"github.com/potluck-gpu/potluck/sandbox/sandboxtest"
)

// The test binary is its own launcher, and, started through it, the probe
// that tries what a hostile llama.cpp child would.
func TestMain(m *testing.M) {
	if err := sandbox.Launch(); !errors.Is(err, sandbox.ErrNotLauncher) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(127)
	}
	if os.Getenv("SANDBOX_PROBE") != "" {
		os.Exit(probe())
	}
	os.Exit(m.Run())
}

// probe tries each thing, prints what happened as one JSON line, waits for
// its standard input to close, and then tries to execute a shell.
func probe() int {
	got := map[string]string{}
	try := func(name string, err error) {
		if err != nil {
			got[name] = err.Error()
		} else {
			got[name] = "ok"
		}
	}
	env := os.Getenv
	_, err := os.ReadFile(env("PROBE_SECRET"))
	try("read secret", err)
	_, err = os.ReadFile(env("PROBE_MODEL"))
	try("read model", err)
	try("write cache", os.WriteFile(filepath.Join(env("PROBE_CACHE"), "x"), []byte("x"), 0o600))
	try("write outside", os.WriteFile(filepath.Join(env("PROBE_OUTSIDE"), "x"), []byte("x"), 0o600))
	try("start a process", exec.Command("/bin/true").Run())
	dial := func(network, addr string) error {
		c, err := net.DialTimeout(network, addr, 2*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
	try("connect out", dial("tcp", env("PROBE_OTHER")))
	try("connect allowed", dial("tcp", env("PROBE_ALLOWED")))
	try("connect unix", dial("unix", env("PROBE_SOCK")))
	try("udp", dial("udp", "127.0.0.1:9"))
	listen := func(addr string) error {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			l.Close()
		}
		return err
	}
	try("listen allowed", listen("127.0.0.1:"+env("PROBE_BIND")))
	try("listen other", listen("127.0.0.1:0"))
	try("ptrace", unix.PtraceAttach(os.Getppid()))
	b, _ := json.Marshal(got)
	fmt.Println(string(b))
	io.Copy(io.Discard, os.Stdin)
	err = unix.Exec("/bin/sh", []string{"sh", "-c", "echo the shell ran"}, os.Environ())
	fmt.Println("exec:", err)
	return 0
}

func TestProbeIsConfined(t *testing.T) {
	if s := sandbox.Supported(); s.Landlock < 4 || !s.Seccomp {
		t.Skipf("this kernel cannot enforce the whole policy: %+v", s)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	home, cache, outside := t.TempDir(), t.TempDir(), t.TempDir()
	secret := filepath.Join(home, ".ssh", "id_ed25519")
	model := filepath.Join(t.TempDir(), "model.gguf")
	for _, f := range []string{secret, model} {
		os.MkdirAll(filepath.Dir(f), 0o700)
		if err := os.WriteFile(f, []byte("data"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	listener := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		return l
	}
	allowed, other := listener(), listener()
	sock := filepath.Join(outside, "s.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	bind := freePort(t)
	port := func(l net.Listener) uint16 { return uint16(l.Addr().(*net.TCPAddr).Port) }

	p := sandbox.Policy{
		Exec: []string{self}, Read: []string{model}, Write: []string{cache}, Dir: cache,
		Bind: []uint16{bind}, Connect: []uint16{port(allowed)}, System: true,
	}
	prog, args, policyEnv, err := sandbox.Wrap(self, p, self, nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prog, args...)
	cmd.Env = append(os.Environ(), policyEnv, "SANDBOX_PROBE=1", "PROBE_SECRET="+secret, "PROBE_MODEL="+model,
		"PROBE_CACHE="+cache, "PROBE_OUTSIDE="+outside, "PROBE_OTHER="+other.Addr().String(),
		"PROBE_ALLOWED="+allowed.Addr().String(), "PROBE_SOCK="+sock, "PROBE_BIND="+strconv.Itoa(int(bind)))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	r := bufio.NewReader(stdout)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("no answer from the probe: %v\n%s", err, stderr.String())
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("%v: %q", err, line)
	}

	// Seen from outside, the probe runs without privileges and filtered.
	sandboxtest.RequireConfined(t, cmd.Process.Pid, "the probe", "CapEff:\t0000000000000000")
	stdin.Close()
	rest, _ := io.ReadAll(r)
	cmd.Wait()

	for name, want := range map[string]string{
		"read secret": "permission denied", "write outside": "permission denied",
		"start a process": "operation not permitted", "connect out": "permission denied",
		"connect unix": "operation not permitted", "udp": "operation not permitted",
		"listen other": "permission denied", "ptrace": "operation not permitted",
		"read model": "ok", "write cache": "ok", "connect allowed": "ok", "listen allowed": "ok",
	} {
		if !strings.Contains(got[name], want) {
			t.Errorf("%s: %q, want %q", name, got[name], want)
		}
	}
	if strings.Contains(string(rest), "the shell ran") || !strings.Contains(string(rest), "exec: permission denied") {
		t.Errorf("executing a shell after the start: %q", rest)
	}
	if _, err := os.Stat(filepath.Join(outside, "x")); err == nil {
		t.Error("the probe wrote outside its cache")
	}
	t.Logf("%s", line)
}

func freePort(t *testing.T) uint16 {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}
