//go:build !linux

package limits

import (
	"context"
	"fmt"
)

func pidMaxIn(context.Context, string) (int64, error) {
	return -1, fmt.Errorf("PID namespaces: %w", ErrUnsupported)
}
