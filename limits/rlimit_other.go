//go:build !linux

package limits

import (
	"context"
	"fmt"
	"runtime"
)

// ReadNoFile is only implemented on Linux.
func ReadNoFile() (NoFile, error) {
	return NoFile{}, fmt.Errorf("RLIMIT_NOFILE on %s: %w", runtime.GOOS, ErrUnsupported)
}

// InheritedSoft is only implemented on Linux.
func InheritedSoft(context.Context, string) (uint64, string) {
	return 0, "unknown on " + runtime.GOOS
}

// SetSoft is only implemented on Linux.
func SetSoft(uint64) (NoFile, error) { return ReadNoFile() }

// EnsureSoft is only implemented on Linux.
func EnsureSoft(uint64) (NoFile, error) { return ReadNoFile() }
