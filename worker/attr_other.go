//go:build !linux

package worker

import "syscall"

func childAttr() *syscall.SysProcAttr { return nil }
