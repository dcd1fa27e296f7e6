package tray

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSingleInstance(t *testing.T) {
	dir := t.TempDir()
	if ok, err := SignalRunning(dir); ok || err != nil {
		t.Fatalf("SignalRunning with nothing running = %v, %v", ok, err)
	}
	in, err := claimInstance(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, instanceFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("instance file: %v, mode %v", err, fi.Mode())
	}
	shown := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { in.serve(ctx, func() { shown <- struct{}{} }); close(done) }()

	if ok, err := SignalRunning(dir); !ok || err != nil {
		t.Fatalf("SignalRunning = %v, %v; want true", ok, err)
	}
	select {
	case <-shown:
	case <-time.After(5 * time.Second):
		t.Fatal("the first instance was not asked to show its dashboard")
	}
	if _, err := claimInstance(dir); !errors.Is(err, ErrRunning) {
		t.Errorf("second claim: %v, want ErrRunning", err)
	}

	// A caller without the secret is turned away.
	b, _ := os.ReadFile(filepath.Join(dir, instanceFile))
	var info instanceInfo
	json.Unmarshal(b, &info)
	info.Secret = "guess"
	b, _ = json.Marshal(info)
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, instanceFile), b, 0o600)
	if ok, _ := SignalRunning(other); ok {
		t.Error("a wrong secret was accepted")
	}

	cancel()
	<-done
	if _, err := os.Stat(filepath.Join(dir, instanceFile)); !os.IsNotExist(err) {
		t.Errorf("instance file left after close: %v", err)
	}
	if ok, _ := SignalRunning(dir); ok {
		t.Error("SignalRunning after close = true")
	}
}

func TestStaleInstanceFile(t *testing.T) {
	dir := t.TempDir()
	// A crashed run left its file; its port is closed now.
	b, _ := json.Marshal(instanceInfo{Addr: "127.0.0.1:1", Secret: "x", PID: 1})
	os.WriteFile(filepath.Join(dir, instanceFile), b, 0o600)
	if ok, err := SignalRunning(dir); ok || err != nil {
		t.Fatalf("stale file: %v, %v", ok, err)
	}
	in, err := claimInstance(dir)
	if err != nil {
		t.Fatalf("claim over a stale file: %v", err)
	}
	in.Close()
	os.WriteFile(filepath.Join(dir, instanceFile), []byte("garbage"), 0o600)
	if ok, err := SignalRunning(dir); ok || err != nil {
		t.Fatalf("garbage file: %v, %v", ok, err)
	}
}
