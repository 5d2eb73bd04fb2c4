package target

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/connlimit/connlimit/internal/shm"
	"golang.org/x/sys/unix"

	"github.com/connlimit/connlimit/limits"
)

// Start runs cfg.Exe as "target" in a child process that dies with this one
// (Pdeathsig) and waits until it listens. The child reports over a pipe on
// its fd 3. On any error the child has been killed and reaped.
func Start(ctx context.Context, cfg ProcessConfig) (*Process, error) {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	if cfg.StatsInterval <= 0 {
		cfg.StatsInterval = DefaultStatsInterval
	}
	// The child keeps its counters in a block mapped here too: read at
	// every sample, with no stats event to write, send and decode.
	mem, block, err := shm.New(CountersBlockSize)
	if err != nil {
		return nil, fmt.Errorf("start target: counters: %w", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		shm.Unmap(mem)
		block.Close()
		return nil, fmt.Errorf("start target: %w", err)
	}
	cmdName, role := "target", "target"
	if cfg.ForwardTo != "" {
		cmdName, role = "forward", "forwarder"
	}
	args := []string{cmdName, "--events-fd", "3", "--counters-fd", "4", "--stats-interval", cfg.StatsInterval.String(),
		"--nofile", strconv.FormatUint(cfg.NoFile, 10)}
	if cfg.Addr != "" {
		args = append(args, "--listen", cfg.Addr)
	}
	args = append(args, cfg.Behavior.Args()...)
	if cfg.ForwardTo != "" {
		args = append(args, "--to", cfg.ForwardTo)
	}
	p := &Process{role: role, exited: make(chan struct{}), mem: mem, counters: shm.At[Counters](mem)}
	cmd := exec.Command(cfg.Exe, args...)
	cmd.ExtraFiles = []*os.File{pw, block}
	cmd.Stderr = stderrWriter{p}
	// A process group of its own: a terminal's Ctrl-C or hang-up reaches the run,
	// which stops its children in order, not the children behind its back.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if cfg.ForwardTo == "" {
		// The built-in target's work is one accept goroutine; a second P only
		// adds thread hand-offs and wakeups that take the core the generator
		// needs (bench/connect-rate.sh: median 0.83-0.90x connstorm → 0.97-0.99x).
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	}
	err = cmd.Start()
	pw.Close() // the child holds the write end now; EOF on pr means it is gone
	block.Close()
	if err != nil {
		pr.Close()
		p.release()
		return nil, fmt.Errorf("start target %s: %w", cfg.Exe, err)
	}
	// Its descriptors are counted here (one fstat), not by the child.
	p.inv, _ = limits.OpenInventory(limits.DefaultProcRoot, strconv.Itoa(cmd.Process.Pid))

	readyCh := make(chan Event, 1)
	p.wg.Go(func() {
		defer pr.Close()
		err := ReadEvents(pr, func(ev Event) {
			if ev.Type == EventReady {
				select {
				case readyCh <- ev:
				default:
				}
			}
			p.onEvent(ev)
		})
		if err != nil {
			_, _ = stderrWriter{p}.Write([]byte(err.Error() + "\n"))
		}
	})
	p.wg.Go(func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	})
	p.proc = cmd.Process

	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	select {
	case p.ready = <-readyCh:
		return p, nil
	case <-p.exited:
		p.wg.Wait()
		p.release()
		return nil, fmt.Errorf("start target: %w", p.exitError())
	case <-timer.C:
		err = fmt.Errorf("start target: not listening after %v", cfg.StartTimeout)
	case <-ctx.Done():
		err = fmt.Errorf("start target: %w", context.Cause(ctx))
	}
	_ = cmd.Process.Kill()
	p.wg.Wait()
	p.release()
	return nil, err
}

// exitError describes how the child ended; call only after Exited.
func (p *Process) exitError() *ExitError {
	e := &ExitError{Role: p.role, PID: p.proc.Pid, State: "exit status 0", Accepted: p.Latest().Accepted,
		Stderr: strings.TrimSpace(p.Stderr())}
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) {
		e.State, e.Status = ee.ProcessState.String(), ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			e.State = fmt.Sprintf("signal %d, %s", int(ws.Signal()), ws.Signal())
			e.Signal = unix.SignalName(ws.Signal())
		}
	} else if p.waitErr != nil {
		e.State = p.waitErr.Error()
	}
	return e
}

// Died returns an *ExitError if the child has exited (and was not stopped by
// Stop), nil while it runs.
func (p *Process) Died() error {
	select {
	case <-p.exited:
		return p.exitError()
	default:
		return nil
	}
}

// Stop asks the target to shut down (SIGTERM), kills it if it has not exited
// within grace, and reaps it. It returns once the child is gone and its event
// stream is drained. Calling Stop more than once is harmless.
func (p *Process) Stop(grace time.Duration) {
	p.stop.Do(func() {
		select {
		case <-p.exited:
		default:
			// os.Process signals through a pidfd: never a recycled PID.
			_ = p.proc.Signal(syscall.SIGTERM)
			t := time.NewTimer(grace)
			select {
			case <-p.exited:
			case <-t.C:
				_ = p.proc.Kill()
			}
			t.Stop()
		}
		p.wg.Wait()
		p.release()
	})
}
