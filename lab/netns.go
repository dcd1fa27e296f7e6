package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// namePrefix starts the name of every namespace a lab creates, followed by
// the test process's pid, so leftovers of a crashed run can be told from the
// namespaces of a run still going on.
const namePrefix = "plab-"

// ipCmd runs `ip args...` and returns its error with the command's output.
func ipCmd(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// tcCmd runs `tc -n ns args...`.
func tcCmd(ns string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "tc", append([]string{"-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tc -n %s %s: %v: %s", ns, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// nsPIDs lists the processes running in namespace ns.
func nsPIDs(ns string) []int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// signalNS sends sig to every process in namespace ns.
func signalNS(ns string, sig syscall.Signal) {
	for _, pid := range nsPIDs(ns) {
		_ = syscall.Kill(pid, sig)
	}
}

// deleteNS kills what runs in namespace ns and deletes it.
func deleteNS(ns string) error {
	for range 3 {
		pids := nsPIDs(ns)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGCONT)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return ipCmd("netns", "del", ns)
}

// listNS returns the names of the named network namespaces.
func listNS() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return nil
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

// removeLeftovers deletes the namespaces of earlier lab runs whose test
// process is gone (a run killed before its cleanup).
func removeLeftovers() []string {
	var removed []string
	for _, ns := range listNS() {
		rest, ok := strings.CutPrefix(ns, namePrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		if deleteNS(ns) == nil {
			removed = append(removed, ns)
		}
	}
	return removed
}

// processAlive says whether pid is a live process (a zombie is not).
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// inNS runs f on an OS thread that has entered the named network namespace.
// Sockets and devices f creates belong to that namespace for their lifetime,
// wherever they are used afterwards. The calling thread is left untouched.
func inNS(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace %s: %w", ns, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and dies with this goroutine instead
			// of running other goroutines in the wrong namespace.
			errc <- fmt.Errorf("leave namespace %s: %w", ns, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// nsDialer returns a DialContext that opens connections from inside the
// named namespace, so a client in the test process reaches a node's API on
// the node's own 127.0.0.1.
func nsDialer(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNS(ns, func() error {
			var err error
			c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// The kernel keeps one ARP table for all network namespaces, and its size
// limit (net.ipv4.neigh.default.gc_thresh3, 1024 by default) is set in the
// initial namespace only. A LAN of n machines on one kernel needs about
// n*(n-1) entries: 50 machines need 2,450. Past the limit the kernel logs
// "neighbor table overflow", a machine cannot resolve its peers' addresses,
// and its connections time out, though on a real LAN each machine holds
// only its own 49.
const neighDir = "/proc/sys/net/ipv4/neigh/default/"

// roomForNeighbours raises the ARP table's limits to hold entries, if they
// are lower, and puts them back when t ends.
func roomForNeighbours(t testing.TB, entries int) {
	t.Helper()
	want := map[string]int{"gc_thresh1": entries / 4, "gc_thresh2": entries, "gc_thresh3": 2 * entries}
	for name, v := range want {
		path := neighDir + name
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("the kernel's ARP table limits: %v", err)
		}
		old, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || old >= v {
			continue
		}
		if err := os.WriteFile(path, []byte(strconv.Itoa(v)), 0o644); err != nil {
			t.Fatalf("room in the kernel's ARP table for %d machines' neighbours: %v", entries, err)
		}
		t.Cleanup(func() { _ = os.WriteFile(path, []byte(strconv.Itoa(old)), 0o644) })
	}
}
