package nodetest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

var _ TB = (testing.TB)(nil)

func TestLogs(t *testing.T) {
	var all Logs
	fmt.Fprint(&all, "one\ntwo msg=request path=/api/status\nthr")
	fmt.Fprint(&all, "ee\nfour")
	if got, want := all.String(), "one\ntwo msg=request path=/api/status\nthree\nfour"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got, want := all.Quiet(0), "one\nthree"; got != want {
		t.Errorf("Quiet = %q, want %q", got, want)
	}
	if got, want := all.Last(1), "three\nfour"; got != want {
		t.Errorf("Last(1) = %q, want %q", got, want)
	}

	ring := Logs{Max: 3}
	for i := range 100 {
		fmt.Fprintf(&ring, "line %d\n", i)
	}
	if got, want := ring.String(), "line 97\nline 98\nline 99\n"; got != want {
		t.Errorf("ring String = %q, want %q", got, want)
	}
	if got, want := ring.Last(2), "line 98\nline 99\n"; got != want {
		t.Errorf("ring Last(2) = %q, want %q", got, want)
	}
	if n := len(ring.lines); n > 2*ring.Max {
		t.Errorf("ring holds %d lines", n)
	}
}

func TestJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/status" && r.Header.Get("X-Key") == "k":
			fmt.Fprint(w, `{"state":"idle"}`)
		case r.URL.Path == "/echo" && r.Header.Get("Content-Type") == "application/json":
			w.Header().Set("Content-Type", "application/json")
			io.Copy(w, r.Body)
		default:
			http.Error(w, "no such thing", http.StatusNotFound)
		}
	}))
	defer srv.Close()

	var st struct{ State string }
	if err := GetJSON(srv.URL+"/status", &st, "X-Key", "k"); err != nil || st.State != "idle" {
		t.Errorf("GetJSON = %+v, %v", st, err)
	}
	if err := GetJSON(srv.URL+"/status", &st); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("GetJSON without the key: %v, want a 404 error", err)
	}
	var echo map[string]int
	if err := PostJSON(srv.URL+"/echo", map[string]int{"n": 2}, &echo); err != nil || echo["n"] != 2 {
		t.Errorf("PostJSON = %v, %v", echo, err)
	}
	if err := PostJSON(srv.URL+"/echo", `{"n":3}`, nil); err != nil {
		t.Errorf("PostJSON of a string: %v", err)
	}
	if err := PostJSON(srv.URL+"/nothing", "{}", nil); err == nil || !strings.Contains(err.Error(), "no such thing") {
		t.Errorf("PostJSON to a missing path: %v, want the answer quoted", err)
	}
}

// helperEnv makes the test binary act as a child process (see TestMain).
const helperEnv = "NODETEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "print":
		fmt.Println("hello from the child")
		os.Exit(3)
	case "sleep":
		fmt.Println("sleeping")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helper(t *testing.T, mode string) *Proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	p, err := Exec("helper", cmd, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExec(t *testing.T) {
	p := helper(t, "print")
	<-p.Exited()
	if p.Running() || p.Cmd.ProcessState.ExitCode() != 3 || p.Err() == nil {
		t.Errorf("exit: running %v, code %d, err %v", p.Running(), p.Cmd.ProcessState.ExitCode(), p.Err())
	}
	if got := p.Logs.String(); got != "hello from the child\n" {
		t.Errorf("logs %q", got)
	}

	// A running child stops at the signal; stopping it again does nothing.
	p = helper(t, "sleep")
	if err := p.Stop(os.Kill, 10*time.Second); err != nil {
		t.Error(err)
	}
	if err := p.Stop(os.Interrupt, time.Second); err != nil {
		t.Errorf("Stop after exit: %v", err)
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root + "/main.go"); err != nil {
		t.Errorf("module root %s has no main.go: %v", root, err)
	}
}
