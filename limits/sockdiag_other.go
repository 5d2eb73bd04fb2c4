//go:build !linux

package limits

import (
	"fmt"
	"runtime"
)

// SockDiag is only implemented on Linux.
type SockDiag struct{}

// OpenSockDiag is only implemented on Linux.
func OpenSockDiag() (*SockDiag, error) {
	return nil, fmt.Errorf("sock_diag on %s: %w", runtime.GOOS, ErrUnsupported)
}

// Close does nothing.
func (*SockDiag) Close() error { return nil }

// Listeners is only implemented on Linux.
func (*SockDiag) Listeners(uint16) ([]Listener, error) { return nil, ErrUnsupported }

// Queued is only implemented on Linux.
func (*SockDiag) Queued([]uint16) (map[ServerConn]bool, error) { return nil, ErrUnsupported }

// Accepted is only implemented on Linux.
func (*SockDiag) Accepted([]uint16) (map[ServerConn]bool, error) { return nil, ErrUnsupported }

// Established is only implemented on Linux.
func (*SockDiag) Established() (map[uint32]Conn, error) { return nil, ErrUnsupported }

// TCPSockets is only implemented on Linux.
func (*SockDiag) TCPSockets(uint32) ([]TCPSocket, error) { return nil, ErrUnsupported }
