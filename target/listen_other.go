//go:build !linux

package target

import (
	"fmt"
	"net"
	"runtime"

	"github.com/connlimit/connlimit/limits"
)

func listenBacklog(addr string, _ int) (net.Listener, error) {
	return nil, fmt.Errorf("listen %s with a backlog on %s: %w", addr, runtime.GOOS, limits.ErrUnsupported)
}
