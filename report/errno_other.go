//go:build !unix

package report

import "syscall"

// ErrnoName is the errno's text, or "" for 0.
func ErrnoName(e syscall.Errno) string {
	if e == 0 {
		return ""
	}
	return e.Error()
}
