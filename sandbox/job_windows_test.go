package sandbox

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// The test binary doubles as the contained child: with helperEnv set it
// waits for a line on its standard input, then tries to start a program,
// and says what happened.
const helperEnv = "POTLUCK_SANDBOX_JOB_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		bufio.NewReader(os.Stdin).ReadString('\n')
		self, _ := os.Executable()
		child := exec.Command(self, "-test.run=^$")
		child.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, helperEnv+"=") })
		err := child.Run()
		fmt.Printf("spawn: %v\n", err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// wine says whether the tests run under Wine, which keeps a job's limits
// but enforces only some of them.
func wine() bool {
	ntdll := windows.NewLazySystemDLL("ntdll.dll")
	return ntdll.NewProc("wine_get_version").Find() == nil
}

// A child contained by Contain is in a job that holds the sandbox's limits
// (one process, no desktop, clipboard or system settings, the memory cap),
// may start no other program, and ends when the job is closed.
func TestContain(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer cmd.Process.Kill()

	job, err := Contain(cmd.Process.Pid, Policy{Memory: 512 << 20})
	if err != nil {
		t.Fatalf("Contain: %v", err)
	}
	lim, err := limits(job)
	if err != nil {
		t.Fatal(err)
	}
	want := uint32(windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | windows.JOB_OBJECT_LIMIT_ACTIVE_PROCESS |
		windows.JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION | windows.JOB_OBJECT_LIMIT_PROCESS_MEMORY)
	switch {
	case lim == (JobLimits{UIErr: lim.UIErr}) && wine():
		t.Logf("Wine does not read a job's limits back")
	case lim.Flags&want != want || lim.ActiveProcesses != 1 || lim.Memory != 512<<20:
		t.Errorf("the job's limits: %+v; want flags %#x, 1 process, 512 MiB", lim, want)
	}
	switch {
	case lim.UIErr != nil && wine():
		t.Logf("Wine does not read UI restrictions back: %v", lim.UIErr)
	case lim.UIErr != nil || lim.UI != UIRestrictions:
		t.Errorf("the job's UI restrictions: %#x, %v; want %#x", lim.UI, lim.UIErr, UIRestrictions)
	}
	t.Logf("the job's limits as Windows holds them: %+v (under Wine: %v)", lim, wine())

	// It may start no other program.
	fmt.Fprintln(stdin, "spawn")
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the child did not finish")
	}
	switch said := strings.TrimSpace(out.String()); {
	case !strings.HasPrefix(said, "spawn: "):
		t.Errorf("the child said %q", said)
	case said == "spawn: <nil>" && wine():
		t.Logf("Wine accepts the one-process limit but does not enforce it: the child started a program")
	case said == "spawn: <nil>":
		t.Errorf("a contained child started another program")
	}

	// Closing the job ends a child still running.
	cmd = exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	if _, err := cmd.StdinPipe(); err != nil { // held open: the child waits
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done = make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer cmd.Process.Kill()
	job, err = Contain(cmd.Process.Pid, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	job.Close()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Errorf("the child outlived its job")
	}
}

// limits reads back the limits of a job Contain made, as Windows holds
// them.
func limits(job io.Closer) (JobLimits, error) {
	h, ok := job.(jobHandle)
	if !ok {
		return JobLimits{}, fmt.Errorf("not a job of Contain's")
	}
	var info windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION
	if err := windows.QueryInformationJobObject(windows.Handle(h), windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info)), nil); err != nil {
		return JobLimits{}, fmt.Errorf("QueryInformationJobObject (limits): %w", err)
	}
	lim := JobLimits{
		Flags: info.BasicLimitInformation.LimitFlags, ActiveProcesses: info.BasicLimitInformation.ActiveProcessLimit,
		Memory: uint64(info.ProcessMemoryLimit),
	}
	var ui windows.JOBOBJECT_BASIC_UI_RESTRICTIONS
	lim.UIErr = windows.QueryInformationJobObject(windows.Handle(h), windows.JobObjectBasicUIRestrictions,
		uintptr(unsafe.Pointer(&ui)), uint32(unsafe.Sizeof(ui)), nil)
	lim.UI = ui.UIRestrictionsClass
	return lim, nil
}

// JobLimits are a job's limits as Windows reports them.
type JobLimits struct {
	Flags, ActiveProcesses uint32
	Memory                 uint64
	UI                     uint32
	UIErr                  error // Wine cannot read the UI restrictions back
}
