//go:build unix

package report

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrnoName is the symbolic name of an errno ("EMFILE"), or "" for 0.
func ErrnoName(e syscall.Errno) string {
	if e == 0 {
		return ""
	}
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return e.Error()
}
