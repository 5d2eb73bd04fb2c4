package limits

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// pidMaxIn reads kernel.pid_max as the PID namespace at nsPath sees it:
// the value is per namespace and a reader only ever sees its own, so a
// child started in that namespace reads it. Needs CAP_SYS_ADMIN there.
func pidMaxIn(ctx context.Context, nsPath string) (int64, error) {
	cat, err := exec.LookPath("cat")
	if err != nil {
		return -1, err
	}
	ns, err := os.Open(nsPath)
	if err != nil {
		return -1, err
	}
	defer ns.Close()
	own, err := os.Open("/proc/self/ns/pid")
	if err != nil {
		return -1, err
	}
	defer own.Close()
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Setns with CLONE_NEWPID moves only this thread's children, so the
		// goroutine keeps its thread and moves it back before letting go.
		// The thread must live on: children started from it with a
		// Pdeathsig (a target, a server under test) would die with it.
		runtime.LockOSThread()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWPID); err != nil {
			runtime.UnlockOSThread()
			done <- result{-1, os.NewSyscallError("setns CLONE_NEWPID", err)}
			return
		}
		n, err := catPidMax(ctx, cat, nsPath)
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWPID) == nil {
			runtime.UnlockOSThread() // else the thread ends with the goroutine
		}
		done <- result{n, err}
	}()
	r := <-done
	return r.n, r.err
}

// catPidMax reads kernel.pid_max from a child, which the calling thread's
// PID namespace for children places.
func catPidMax(ctx context.Context, cat, nsPath string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cat, "/proc/sys/kernel/pid_max").Output()
	if err != nil {
		return -1, fmt.Errorf("read kernel.pid_max in %s: %w", nsPath, err)
	}
	return strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
}
