//go:build unix

package report

import "syscall"

const nonBlock = syscall.O_NONBLOCK
