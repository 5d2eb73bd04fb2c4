package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// runInNetNS re-executes this run in a child with a network namespace of its
// own (CLONE_NEWNET), so sysctls can be set for the demo without touching the
// host and the kernel's counters count this run alone. The child prints its
// own report; its exit status becomes ours.
func runInNetNS(ctx context.Context, exe string, args []string, stdout, stderr io.Writer) error {
	cmd := exec.Command(exe, append(append([]string{"run"}, args...), "--netns-child")...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Its own process group: a terminal's Ctrl-C reaches only us, and we
	// forward it once (a second one would kill the child at once).
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, unix.EPERM) {
			return runtimeErr(fmt.Errorf("--netns: creating a network namespace needs root (CAP_SYS_ADMIN): run as root, or drop --netns (clone: %w)", err))
		}
		return runtimeErr(fmt.Errorf("--netns: start the run in a new network namespace: %w", err))
	}
	done := make(chan struct{})
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		select {
		case <-done:
		case <-ctx.Done():
			sig := syscall.SIGTERM
			var se *signalError
			if errors.As(context.Cause(ctx), &se) {
				sig = se.sig
			}
			_ = cmd.Process.Signal(sig)
		}
	}()
	err := cmd.Wait()
	close(done)
	<-forwarded
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return runtimeErr(fmt.Errorf("--netns: the namespaced run (pid %d) was killed by %v", cmd.Process.Pid, ws.Signal()))
		}
		return &exitError{ee.ExitCode(), errReported}
	}
	if err != nil {
		return runtimeErr(fmt.Errorf("--netns: %w", err))
	}
	return nil
}
