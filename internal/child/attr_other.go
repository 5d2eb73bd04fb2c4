//go:build !linux

package child

import (
	"os"
	"syscall"
)

// Only Linux ties a child to its parent's life.
func sysProcAttr() *syscall.SysProcAttr { return nil }

func signaled(*os.ProcessState) (syscall.Signal, bool) { return 0, false }
