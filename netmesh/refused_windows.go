package netmesh

import (
	"errors"
	"syscall"
)

// Windows reports a refused or reset connection by its own error numbers,
// which syscall.ECONNREFUSED and syscall.ECONNRESET do not match there.
const (
	errorNetnameDeleted    = syscall.Errno(64)    // ERROR_NETNAME_DELETED: reset, as overlapped I/O says it
	errorConnectionRefused = syscall.Errno(1225)  // ERROR_CONNECTION_REFUSED
	wsaeConnectionRefused  = syscall.Errno(10061) // WSAECONNREFUSED
	wsaeConnectionReset    = syscall.WSAECONNRESET
	wsaeConnectionAborted  = syscall.WSAECONNABORTED
)

// connRefused says whether a dial's error means that the other end refused or
// reset the connection: nothing listens there, or the peer turned it away.
func connRefused(err error) bool {
	for _, e := range []syscall.Errno{errorNetnameDeleted, errorConnectionRefused, wsaeConnectionRefused,
		wsaeConnectionReset, wsaeConnectionAborted, syscall.ECONNREFUSED, syscall.ECONNRESET} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
