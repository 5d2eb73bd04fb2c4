//go:build !linux

package loadgen

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"
)

var errUnsupported = errors.New("not supported on this operating system")

// Open is only implemented on Linux (epoll).
func (g *Generator) Open(context.Context) error {
	return fmt.Errorf("loadgen on %s: %w", runtime.GOOS, errUnsupported)
}

// Prepare is only implemented on Linux.
func (g *Generator) Prepare() error {
	return fmt.Errorf("loadgen on %s: %w", runtime.GOOS, errUnsupported)
}

// Close is only implemented on Linux.
func (g *Generator) Close() error { return nil }

type engine struct{}

// Hold is only implemented on Linux.
func (g *Generator) Hold(context.Context, time.Duration) error { return nil }
