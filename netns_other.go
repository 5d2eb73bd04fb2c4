//go:build !linux

package main

import (
	"context"
	"io"
	"runtime"
)

func runInNetNS(context.Context, string, []string, io.Writer, io.Writer) error {
	return usageErr("--netns: network namespaces are Linux only, not %s", runtime.GOOS)
}
