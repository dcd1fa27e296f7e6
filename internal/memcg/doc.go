// Package memcg makes memory cgroups for tests on Linux: a memory limit
// that the kernel's out-of-memory killer enforces on the processes put in
// it, the way a container's or a systemd scope's limit would.
package memcg
