package target

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/connlimit/connlimit/internal/child"
	"github.com/connlimit/connlimit/internal/shm"
	"github.com/connlimit/connlimit/limits"
)

// ProcessConfig describes a target to start as a child process.
type ProcessConfig struct {
	// Exe is a binary with the "target" subcommand (connlimit itself).
	Exe string
	// Addr, NoFile and StatsInterval are passed to Serve in the child.
	Addr          string
	NoFile        uint64
	StatsInterval time.Duration
	Behavior
	// ForwardTo, when set, starts a forwarder ("connlimit forward --to")
	// instead of the target.
	ForwardTo string
	// StartTimeout bounds the wait for the ready event; 10 s when 0.
	StartTimeout time.Duration
}

// Process is a running target child. Its methods are safe for concurrent use.
type Process struct {
	role  string // "target" or "forwarder", for messages
	ready Event

	mu       sync.Mutex
	latest   Event
	mem      []byte            // the counters block shared with the child; nil once released
	counters *Counters         // in mem
	inv      *limits.Inventory // the child's /proc/PID/fd, for its descriptor count
	first    *Event
	firstAt  time.Time // when the first_emfile event arrived
	stderr   tailBuffer

	c    *child.Child // the process and its reaper
	stop sync.Once
	wg   sync.WaitGroup // the event reader
}

// Ready is the event the target sent once listening.
func (p *Process) Ready() Event { return p.ready }

// Latest is the target's counters now: read in the block it shares with
// this process while it runs, else the last ones it reported.
func (p *Process) Latest() Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current()
}

func (p *Process) current() Event {
	ev := p.latest
	if p.counters == nil {
		return ev
	}
	if ev.Type == "" {
		ev.Type = EventStats
	}
	c := p.counters
	ev.Accepted, ev.AcceptErrors, ev.Shed, ev.Capped = c.Accepted.Load(), c.AcceptErrors.Load(), c.Shed.Load(), c.Capped.Load()
	ev.Open, ev.Forwarded, ev.DialErrors = c.Open.Load(), c.Forwarded.Load(), c.DialErrors.Load()
	if p.inv != nil {
		if n, err := p.inv.Count(); err == nil && n > 0 {
			ev.FDsOpen = n
		}
	}
	return ev
}

// release keeps the counters' last values and unmaps the block; call it
// once the child is gone.
func (p *Process) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.counters == nil {
		return
	}
	p.latest = p.current()
	shm.Unmap(p.mem)
	p.mem, p.counters = nil, nil
	if p.inv != nil {
		p.inv.Close()
		p.inv = nil
	}
}

// FirstEMFILE is the target's record of its first failed accept for lack of
// descriptors, or nil.
func (p *Process) FirstEMFILE() *Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first
}

// FirstEMFILEAt is when the first_emfile event arrived; zero if none did.
func (p *Process) FirstEMFILEAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.firstAt
}

// Exited is closed once the child has exited and been reaped.
func (p *Process) Exited() <-chan struct{} { return p.c.Exited() }

// Stderr returns the last lines the child wrote to stderr.
func (p *Process) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func (p *Process) onEvent(ev Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev.Type {
	case EventFirstEMFILE:
		e := ev
		p.first, p.firstAt = &e, time.Now()
	}
	if ev.Type != EventReady {
		p.latest = ev
	}
}

// ExitError describes a target that exited before it was asked to stop.
type ExitError struct {
	Role  string // "target" or "forwarder"
	PID   int
	State string // "exit status 1", "signal 9, killed", ...
	// Signal is the signal that killed it ("SIGKILL"), empty when it
	// exited; Status its exit status, -1 when a signal killed it.
	Signal   string
	Status   int
	Accepted int64
	Stderr   string
}

func (e *ExitError) Error() string {
	role := e.Role
	if role == "" {
		role = "target"
	}
	how := "exited (" + e.State + ")"
	if e.Signal != "" {
		how = fmt.Sprintf("was killed by %s (%s)", e.Signal, e.State)
	}
	msg := fmt.Sprintf("%s (pid %d) %s after %d accepts", role, e.PID, how, e.Accepted)
	if line := e.LastLine(); line != "" && e.Signal == "" {
		// A process that exited may have said why; one killed did not.
		msg += ": " + line
	}
	return msg
}

// LastLine is the last line the process wrote to stderr.
func (e *ExitError) LastLine() string {
	s := strings.TrimSpace(e.Stderr)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// tailBuffer keeps the last 2 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) write(p []byte) {
	t.b = append(t.b, p...)
	if over := len(t.b) - 2048; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
}

func (t *tailBuffer) String() string { return string(t.b) }

type stderrWriter struct{ p *Process }

func (w stderrWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	w.p.stderr.write(b)
	return len(b), nil
}
