package netmeshtest

import (
	"testing"
	"time"
)

func TestLeakCheckerSeesLeaks(t *testing.T) {
	before := goroutines()
	stop := make(chan struct{})
	go func() { <-stop }()
	if leaked := leakedSince(before); len(leaked) != 1 {
		t.Fatalf("found %d leaked goroutines, want 1:\n%v", len(leaked), leaked)
	}
	close(stop)
	deadline := time.Now().Add(5 * time.Second)
	for len(leakedSince(before)) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("finished goroutine still reported")
		}
		time.Sleep(time.Millisecond)
	}
}
