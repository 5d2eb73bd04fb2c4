package target

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/connlimit/connlimit/internal/child"
	"github.com/connlimit/connlimit/internal/shm"

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
	p := &Process{role: role}
	// The child keeps its counters in a block mapped here too: read at
	// every sample, with no stats event to write, send and decode. The
	// built-in target's work is one accept goroutine; a second P only adds
	// thread hand-offs and wakeups that take the core the generator needs
	// (bench/connect-rate.sh: median 0.83-0.90x connstorm → 0.97-0.99x).
	c, err := child.Start(child.Spec{Exe: cfg.Exe, Args: args, Pipes: 1, Block: CountersBlockSize,
		Stderr: stderrWriter{p}, OneP: cfg.ForwardTo == ""})
	if err != nil {
		return nil, fmt.Errorf("start %s %s: %w", role, cfg.Exe, err)
	}
	p.c = c
	p.mem, p.counters = c.Mem, shm.At[Counters](c.Mem)
	pr := c.Pipes[0] // EOF on it means the child is gone
	// Its descriptors are counted here (one fstat), not by the child.
	p.inv, _ = limits.OpenInventory(limits.DefaultProcRoot, strconv.Itoa(c.Pid()))

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

	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	select {
	case p.ready = <-readyCh:
		return p, nil
	case <-p.c.Exited():
		p.wg.Wait()
		p.release()
		return nil, fmt.Errorf("start target: %w", p.exitError())
	case <-timer.C:
		err = fmt.Errorf("start target: not listening after %v", cfg.StartTimeout)
	case <-ctx.Done():
		err = fmt.Errorf("start target: %w", context.Cause(ctx))
	}
	_ = p.c.Cmd.Process.Kill()
	<-p.c.Exited()
	p.wg.Wait()
	p.release()
	return nil, err
}

// exitError describes how the child ended; call only after Exited.
func (p *Process) exitError() *ExitError {
	end := p.c.End()
	return &ExitError{Role: p.role, PID: p.c.Pid(), State: end.State, Signal: end.Signal, Status: end.Status,
		Accepted: p.Latest().Accepted, Stderr: strings.TrimSpace(p.Stderr())}
}

// Died returns an *ExitError if the child has exited (and was not stopped by
// Stop), nil while it runs.
func (p *Process) Died() error {
	select {
	case <-p.c.Exited():
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
		case <-p.c.Exited():
		default:
			// os.Process signals through a pidfd: never a recycled PID.
			_ = p.c.Cmd.Process.Signal(syscall.SIGTERM)
			t := time.NewTimer(grace)
			select {
			case <-p.c.Exited():
			case <-t.C:
				_ = p.c.Cmd.Process.Kill()
			}
			t.Stop()
		}
		<-p.c.Exited() // reaped
		p.wg.Wait()
		p.release()
	})
}
