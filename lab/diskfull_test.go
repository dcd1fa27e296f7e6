package lab_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/potluck-gpu/potluck/engine/enginetest"
	"github.com/potluck-gpu/potluck/lab"
)

// A node whose data directory's disk fills up goes on serving and stays in
// the network; a settings change holds for the run and the status says it
// is not saved; once space is freed, the change and the requests served
// meanwhile reach the disk, and a restart finds them.
func TestLabDiskFull(t *testing.T) {
	enginetest.Runtime(t)
	m := enginetest.TestModel(t)
	nw := lab.New(t, 2, lab.Options{Hold: []int{0}, Args: func(i int) []string {
		if i == 0 {
			return []string{"--model", m.Path}
		}
		return nil
	}})
	a, b := nw.Nodes[0], nw.Nodes[1]
	smallDisk(t, a.DataDir, 16<<20)
	a.Start()
	a.PeerID()
	online := func(from, to *lab.Node) func() bool {
		return func() bool { p, ok := from.PeerByName(to.Name); return ok && p.Online }
	}
	nw.Wait("a and b to see each other", 30*time.Second, func() bool { return online(a, b)() && online(b, a)() })
	nw.Wait("a's model", 60*time.Second, func() bool { st, err := a.Status(); return err == nil && st.ModelReady() })

	filler := filepath.Join(a.DataDir, "filler")
	fillDisk(t, filler)

	// A settings change: taken for now, and said to be unsaved.
	err := a.Admin("/api/lend", map[string]any{"lend_to": []string{b.Name}}, nil)
	if err == nil || !strings.Contains(err.Error(), "is full") {
		t.Errorf("a lend-to change on a full disk: %v; want an error that says the disk is full", err)
	}
	// Requests are answered; each goes into the ledger, which cannot be
	// written now.
	const served = 3
	for i := range served {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := a.Complete(ctx, 8)
		cancel()
		if err != nil || c.Tokens == 0 {
			t.Fatalf("request %d on a full disk: %+v, %v", i, c, err)
		}
	}
	warned := func(code string) bool {
		st, err := a.Status()
		if err != nil {
			return false
		}
		for _, w := range st.Warnings {
			if w.Code == code && strings.Contains(w.Message, "is full") {
				return true
			}
		}
		return false
	}
	nw.Wait("a to warn that neither its settings nor its ledger can be saved", 30*time.Second, func() bool {
		return warned("settings") && warned("ledger-save")
	})
	if !online(b, a)() || !online(a, b)() {
		t.Error("a full disk took a out of the network")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	nw.Wait("a to save everything once space is free", 30*time.Second, func() bool {
		s, _ := os.ReadFile(filepath.Join(a.DataDir, "settings.json"))
		l, _ := os.ReadFile(filepath.Join(a.DataDir, "ledger.json"))
		return !warned("settings") && !warned("ledger-save") &&
			strings.Contains(string(s), `"`+b.Name+`"`) && strings.Count(string(l), `"asker"`) >= served
	})
	t.Logf("LAB disk full: saved %.1fs after space was freed", time.Since(freed).Seconds())

	a.Stop()
	a.Restart()
	nw.Wait("a back in the network", 30*time.Second, online(a, b))
	var lend struct {
		LendTo []string `json:"lend_to"`
	}
	if err := a.GetJSON("/api/status", &lend); err != nil || len(lend.LendTo) != 1 || lend.LendTo[0] != b.Name {
		t.Errorf("lend-to after the restart: %+v (%v); want [%s]", lend, err, b.Name)
	}
}

// smallDisk mounts a file system of size bytes on dir (empty until then)
// for the rest of the test.
func smallDisk(t *testing.T, dir string, size int64) {
	t.Helper()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "mode=0700,size="+strconv.FormatInt(size, 10), "potluck-lab", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mount a small disk on %s: %v: %s", dir, err, out)
	}
	// Lazily: the node may still have files open when the test ends.
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

// fillDisk writes path until its disk has no byte left.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{1 << 20, 4096, 1} {
		buf := make([]byte, chunk)
		for range 1 << 16 {
			if _, err = f.Write(buf); err != nil {
				break
			}
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("fill the disk: %v; want it full", err)
		}
	}
}
