//go:build !linux

package main

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/connlimit/connlimit/limits"
)

func runInNetNS(context.Context, string, []string, io.Writer, io.Writer) error {
	return usageErr("--netns: network namespaces are Linux only, not %s", runtime.GOOS)
}

func setupNetNS(string, limits.PortRange, int) error {
	return fmt.Errorf("network namespaces: %w", limits.ErrUnsupported)
}
