//go:build !windows

package netmesh

import (
	"errors"
	"syscall"
)

// connRefused says whether a dial's error means that the other end refused or
// reset the connection: nothing listens there, or the peer turned it away.
func connRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}
