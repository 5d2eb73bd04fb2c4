//go:build !linux

package sockaddr

import (
	"errors"
	"net/netip"
	"runtime"
)

// CheckLocal is only implemented on Linux.
func CheckLocal([]netip.Addr) error {
	return errors.New("source addresses: not supported on " + runtime.GOOS)
}
