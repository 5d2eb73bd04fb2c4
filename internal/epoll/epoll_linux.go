package epoll

import (
	"context"
	"errors"
	"github.com/connlimit/connlimit/internal/rawsock"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Set is an epoll instance. One goroutine at a time may wait; Ctl may be
// called from any goroutine.
type Set struct {
	fd int
	// f and rc exist once a Wait has parked: from then on the runtime's
	// netpoller watches the set, and every event in it wakes the netpoller
	// too, which a busy loop should not pay for.
	f  *os.File
	rc syscall.RawConn

	// The parked waiter's, kept here so a wait allocates nothing.
	events []unix.EpollEvent
	n      int
	err    error
	poll   func(uintptr) bool
}

// New opens an epoll set (close-on-exec).
func New() (*Set, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	s := &Set{fd: fd}
	s.poll = func(uintptr) bool {
		s.n, s.err = unix.EpollWait(s.fd, s.events, 0)
		if errors.Is(s.err, unix.EINTR) {
			s.n, s.err = 0, nil
		}
		return s.n > 0 || s.err != nil
	}
	return s, nil
}

// Fd is the epoll descriptor.
func (s *Set) Fd() int { return s.fd }

// Ctl is epoll_ctl(2) on the set, unknown to the scheduler (see rawsock):
// busy loops call it once per connection, and a call the kernel preempts
// would otherwise have sysmon hand the P to another thread.
func (s *Set) Ctl(op, fd int, ev *unix.EpollEvent) error {
	return os.NewSyscallError("epoll_ctl", rawsock.EpollCtl(s.fd, op, fd, ev))
}

// Spin is the longest Poll blocks in epoll_wait: sysmon leaves a system
// call alone for 10 ms while a P is idle, and takes the P back after that.
const Spin = 5 * time.Millisecond

// Poll is epoll_wait for at most min(timeout, Spin), in this thread and
// unknown to the scheduler (see rawsock): the fastest wait for a loop that
// is busy, which calls again when it returns 0 early.
func (s *Set) Poll(events []unix.EpollEvent, timeout time.Duration) (int, error) {
	n, err := rawsock.EpollWait(s.fd, events, min(max(timeout, 0), Spin))
	if errors.Is(err, unix.EINTR) {
		return 0, nil
	}
	if err != nil {
		return 0, os.NewSyscallError("epoll_wait", err)
	}
	return n, nil
}

// Wait fills events with what is ready, waiting at most timeout for the
// first (forever if timeout < 0); it returns 0 when the time runs out or ctx
// ends. It parks the goroutine in the netpoller, so a process that waits
// costs no thread and lets sysmon sleep; ctx ends the wait at once, so a
// long wait needs no wakeups to look at it.
func (s *Set) Wait(ctx context.Context, events []unix.EpollEvent, timeout time.Duration) (int, error) {
	if ctx.Err() != nil {
		return 0, nil
	}
	n, err := s.Poll(events, 0)
	if n > 0 || err != nil || timeout == 0 {
		return n, err
	}
	if s.f == nil {
		// Non-blocking, so os.NewFile registers it with the netpoller: an
		// epoll descriptor is readable while it has events ready.
		if err := unix.SetNonblock(s.fd, true); err != nil {
			return 0, os.NewSyscallError("fcntl", err)
		}
		f := os.NewFile(uintptr(s.fd), "epoll")
		rc, err := f.SyscallConn()
		if err != nil {
			return 0, err
		}
		s.f, s.rc = f, rc
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	if err := s.f.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	// A deadline in the past wakes the parked read; set after ours, it
	// stands. Wait returns only once that goroutine is done.
	woken := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(woken)
		s.f.SetReadDeadline(time.Unix(1, 0))
	})
	defer func() {
		if !stop() {
			<-woken
		}
	}()
	s.events = events
	defer func() { s.events = nil }()
	if err := s.rc.Read(s.poll); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, nil
		}
		return 0, err
	}
	if s.err != nil {
		return 0, os.NewSyscallError("epoll_wait", s.err)
	}
	return s.n, nil
}

// Close closes the set; a Wait in progress returns an error.
func (s *Set) Close() error {
	if s.f != nil {
		return s.f.Close()
	}
	return os.NewSyscallError("close", unix.Close(s.fd))
}
