// Package nodetest is the one harness for Potluck's end-to-end tests: it
// builds the potluck command once per process, starts nodes on free
// loopback ports with their own data dirs, waits for what a node's
// /api/status says, and reads and sends JSON. The root package's tests, the
// tray's, the namespace lab, winlab and the bench all drive the binary
// through it.
//
// The test entry points (Binary, Start, Node.WaitStatus) take a TB and fail
// the test; each has a plain one beside it (Build, Launch, Node.Await) that
// returns an error, for the bench, which is a program and not a test.
package nodetest

// TB is the part of testing.TB the harness uses; *testing.T and
// *testing.B satisfy it.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	TempDir() string
	Failed() bool
}
