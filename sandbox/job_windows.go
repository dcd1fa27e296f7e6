package sandbox

import (
	"fmt"
	"io"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Windows has no launcher: a child is contained once it has started, in a
// Job Object of its own, before it has read anything a member sent (a
// worker's first stream, a model file a peer copied). The job ends the
// child when its handle closes, as it does when Potluck's process ends
// however it ends; lets it start no other process; kills it, rather than
// opening a crash dialog, on an unhandled exception; caps the memory it
// commits where the policy names a limit; and keeps it from the desktop,
// the clipboard, other programs' windows and the system's settings.
//
// What is kept: the child runs with the user's token, so the GPU drivers,
// which load into the process and talk to the kernel as the user, keep
// working; a restricted token or a low integrity level breaks the Vulkan
// and CUDA drivers' access to their own files and registry keys. Its files
// are therefore the user's to read, unlike on Linux.

// Contains says whether children are contained once started (Windows),
// rather than by a launcher.
const Contains = true

// UIRestrictions are the user-interface limits every contained child gets.
const UIRestrictions = windows.JOB_OBJECT_UILIMIT_DESKTOP | windows.JOB_OBJECT_UILIMIT_DISPLAYSETTINGS |
	windows.JOB_OBJECT_UILIMIT_EXITWINDOWS | windows.JOB_OBJECT_UILIMIT_GLOBALATOMS |
	windows.JOB_OBJECT_UILIMIT_HANDLES | windows.JOB_OBJECT_UILIMIT_READCLIPBOARD |
	windows.JOB_OBJECT_UILIMIT_SYSTEMPARAMETERS | windows.JOB_OBJECT_UILIMIT_WRITECLIPBOARD

// Contain puts the started process pid in a Job Object with p's limits.
// Closing what it returns ends the process, and anything left of it.
func Contain(pid int, p Policy) (io.Closer, error) {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("CreateJobObject: %w", err)
	}
	if err := setLimits(job, p); err != nil {
		windows.CloseHandle(job)
		return nil, err
	}
	h, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE, false, uint32(pid))
	if err != nil {
		windows.CloseHandle(job)
		return nil, fmt.Errorf("OpenProcess: %w", err)
	}
	defer windows.CloseHandle(h)
	if err := windows.AssignProcessToJobObject(job, h); err != nil {
		windows.CloseHandle(job)
		return nil, fmt.Errorf("AssignProcessToJobObject: %w", err)
	}
	return jobHandle(job), nil
}

func setLimits(job windows.Handle, p Policy) error {
	var info windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION
	info.BasicLimitInformation.LimitFlags = windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE |
		windows.JOB_OBJECT_LIMIT_ACTIVE_PROCESS | windows.JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION
	info.BasicLimitInformation.ActiveProcessLimit = 1
	if p.Memory > 0 {
		info.BasicLimitInformation.LimitFlags |= windows.JOB_OBJECT_LIMIT_PROCESS_MEMORY
		info.ProcessMemoryLimit = uintptr(p.Memory)
	}
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		return fmt.Errorf("SetInformationJobObject (limits): %w", err)
	}
	ui := windows.JOBOBJECT_BASIC_UI_RESTRICTIONS{UIRestrictionsClass: UIRestrictions}
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectBasicUIRestrictions,
		uintptr(unsafe.Pointer(&ui)), uint32(unsafe.Sizeof(ui))); err != nil {
		return fmt.Errorf("SetInformationJobObject (UI restrictions): %w", err)
	}
	return nil
}

type jobHandle windows.Handle

func (j jobHandle) Close() error { return windows.CloseHandle(windows.Handle(j)) }
