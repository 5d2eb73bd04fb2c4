//go:build !linux

package target

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/connlimit/connlimit/limits"
)

// Start is only implemented on Linux, where a child can be tied to its
// parent's life with Pdeathsig.
func Start(context.Context, ProcessConfig) (*Process, error) {
	return nil, fmt.Errorf("start target on %s: %w", runtime.GOOS, limits.ErrUnsupported)
}

// Died is only implemented on Linux.
func (p *Process) Died() error { return nil }

// Stop is only implemented on Linux.
func (p *Process) Stop(time.Duration) {}
