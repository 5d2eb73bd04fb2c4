// Package child starts connlimit's own child processes (built-in targets,
// forwarders, generator workers) the one way they all need: the same
// binary with a subcommand, tied to this process's life (Pdeathsig), in a
// process group of its own (a terminal's Ctrl-C or hang-up reaches the run,
// which stops its children in order), optionally on one P, with pipes the
// child writes on fds 3, 4, ... and a shared counters block after them; and
// one reaper that records how it ended.
package child

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"

	"github.com/connlimit/connlimit/internal/shm"
	"golang.org/x/sys/unix"
)

// Spec is a child to start.
type Spec struct {
	Exe  string
	Args []string
	// Pipes is how many pipes the child writes on: their write ends are its
	// fds 3, 4, ...; their read ends are Child.Pipes.
	Pipes int
	// Block, when above 0, maps a shared block of that many bytes, handed
	// to the child as the fd after the pipes; Child.Mem maps it here.
	Block int
	// Stdin gives the child a pipe on its stdin: Child.Stdin.
	Stdin  bool
	Stderr io.Writer
	// OneP runs the child with GOMAXPROCS=1: a child whose work is one loop
	// goroutine only pays for a second P in thread hand-offs and wakeups.
	OneP bool
}

// Child is a started child process. Exited and Err are safe from any
// goroutine.
type Child struct {
	Cmd   *exec.Cmd
	Pipes []*os.File     // the read ends, the caller's to close
	Stdin io.WriteCloser // nil without Spec.Stdin
	Mem   []byte         // the shared block, nil without Spec.Block; the caller unmaps it (shm.Unmap)

	exited  chan struct{}
	waitErr error
	wg      sync.WaitGroup
}

// Start starts the child. On error nothing it opened stays open.
func Start(s Spec) (*Child, error) {
	c := &Child{exited: make(chan struct{})}
	var childs []*os.File // the child's ends: closed here once it holds them
	fail := func(err error) (*Child, error) {
		for _, f := range append(c.Pipes, childs...) {
			f.Close()
		}
		if c.Mem != nil {
			shm.Unmap(c.Mem)
		}
		return nil, err
	}
	for range s.Pipes {
		r, w, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		c.Pipes, childs = append(c.Pipes, r), append(childs, w)
	}
	if s.Block > 0 {
		mem, block, err := shm.New(s.Block)
		if err != nil {
			return fail(fmt.Errorf("counters block: %w", err))
		}
		c.Mem, childs = mem, append(childs, block)
	}
	c.Cmd = exec.Command(s.Exe, s.Args...)
	c.Cmd.ExtraFiles = childs
	c.Cmd.Stderr = s.Stderr
	c.Cmd.SysProcAttr = sysProcAttr()
	if s.OneP {
		c.Cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	}
	if s.Stdin {
		var err error
		if c.Stdin, err = c.Cmd.StdinPipe(); err != nil {
			return fail(err)
		}
	}
	err := c.Cmd.Start()
	for _, f := range childs {
		f.Close()
	}
	childs = nil
	if err != nil {
		return fail(err)
	}
	c.wg.Go(func() {
		c.waitErr = c.Cmd.Wait()
		close(c.exited)
	})
	return c, nil
}

// Pid is the child's process id.
func (c *Child) Pid() int { return c.Cmd.Process.Pid }

// Exited is closed once the child is reaped.
func (c *Child) Exited() <-chan struct{} { return c.exited }

// Err is how the child ended (cmd.Wait's error); call it after Exited.
func (c *Child) Err() error {
	<-c.exited
	return c.waitErr
}

// End is how a child ended.
type End struct {
	Signal string // the signal that killed it ("SIGKILL"); "" when it exited
	Status int    // its exit status; -1 when a signal killed it
	State  string // for people: "exit status 1", "signal 9, killed"
}

// End says how the child ended; call it after Exited.
func (c *Child) End() End {
	err := c.Err()
	e := End{State: "exit status 0"}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		e.State, e.Status = ee.ProcessState.String(), ee.ExitCode()
		if sig, ok := signaled(ee.ProcessState); ok {
			e.State, e.Signal = fmt.Sprintf("signal %d, %s", int(sig), sig), unix.SignalName(sig)
		}
	case err != nil:
		e.State, e.Status = err.Error(), -1
	}
	return e
}
