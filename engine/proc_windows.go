package engine

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/potluck-gpu/potluck/sandbox"
)

const exeSuffix = ".exe"

// createNoWindow keeps a console program (llama-server.exe) started by the
// GUI program from opening a console window of its own.
const createNoWindow = 0x08000000

// configureProcess stops the child when its context ends. Windows has no
// SIGTERM; the child is killed and Wait gives up after grace. It runs
// without a console window.
func configureProcess(cmd *exec.Cmd, grace time.Duration) {
	noWindow(cmd)
	cmd.WaitDelay = grace
}

// noWindow starts a console program without a console window.
func noWindow(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.HideWindow = true
	cmd.SysProcAttr.CreationFlags |= createNoWindow
}

// killGroup closes the job of a contained child, which ends what is left
// of it.
func killGroup(cmd *exec.Cmd) { release(cmd) }

// release closes the job of a contained child once it has ended.
func release(cmd *exec.Cmd) {
	if j, ok := contained.LoadAndDelete(cmd); ok {
		j.(io.Closer).Close()
	}
}

// contained holds the jobs of the children started contained, until
// killGroup closes them.
var contained sync.Map // *exec.Cmd → io.Closer

var (
	jobOnce sync.Once
	job     windows.Handle
	jobErr  error
)

// childJob is the Job Object every llama.cpp child joins. Its handle is
// held until Potluck's process ends, however it ends (a crash, Task
// Manager's End task): Windows then closes it, and kill-on-close ends every
// child with it, so no llama-server.exe is left holding a port or VRAM.
func childJob() (windows.Handle, error) {
	jobOnce.Do(func() {
		h, err := windows.CreateJobObject(nil, nil)
		if err != nil {
			jobErr = fmt.Errorf("CreateJobObject: %w", err)
			return
		}
		var info windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION
		info.BasicLimitInformation.LimitFlags = windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
		if _, err := windows.SetInformationJobObject(h, windows.JobObjectExtendedLimitInformation,
			uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
			windows.CloseHandle(h)
			jobErr = fmt.Errorf("SetInformationJobObject: %w", err)
			return
		}
		job = h
	})
	return job, jobErr
}

// afterStart puts a started child in a job that dies with Potluck: its own,
// with the sandbox's limits, when it was started confined, or else the one
// every unconfined child shares.
func afterStart(cmd *exec.Cmd) error {
	var containErr error
	if p, ok := toContain.LoadAndDelete(cmd); ok {
		j, err := sandbox.Contain(cmd.Process.Pid, p.(sandbox.Policy))
		if err == nil {
			contained.Store(cmd, j)
			return nil
		}
		containErr = fmt.Errorf("the sandbox: %w", err) // it still dies with Potluck
	}
	if err := joinShared(cmd); err != nil {
		return errors.Join(containErr, err)
	}
	return containErr
}

func joinShared(cmd *exec.Cmd) error {
	j, err := childJob()
	if err != nil {
		return err
	}
	h, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE, false, uint32(cmd.Process.Pid))
	if err != nil {
		return fmt.Errorf("OpenProcess: %w", err)
	}
	defer windows.CloseHandle(h)
	if err := windows.AssignProcessToJobObject(j, h); err != nil {
		return fmt.Errorf("AssignProcessToJobObject: %w", err)
	}
	return nil
}
