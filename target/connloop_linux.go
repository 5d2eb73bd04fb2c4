package target

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"

	"github.com/connlimit/connlimit/internal/epoll"
	"github.com/connlimit/connlimit/internal/rawsock"
	"github.com/connlimit/connlimit/internal/sockaddr"

	"golang.org/x/sys/unix"
)

// connLoop owns the greeting target's listener and serves its connections
// from one epoll set and one goroutine: a held connection costs its descriptor and nothing else,
// and accepting one costs accept4, the greeting's write and an epoll_ctl
// (Go's Accept would add a getsockname, a goroutine and a parked Read).
//
// The accept goroutine owns accept and add (and the fields they use); run
// owns everything it reads and echoes; live is shared under mu.
type connLoop struct {
	s    *server
	ln   *os.File // the listening socket
	lnFd int
	addr *net.TCPAddr
	set  *epoll.Set
	rc   syscall.RawConn // ln's, to wait in Go's netpoller

	// Accept goroutine only.
	acceptFn func(fd uintptr) bool
	afd      int
	aerr     error
	rsa      unix.RawSockaddrAny
	pfd      [2]unix.PollFd // the listener and the connections' epoll set, for ppoll(2)
	greet    []byte

	// run only.
	buf   []byte
	state map[int]*echoState

	mu   sync.Mutex
	live []bool // by descriptor number: a connection the loop holds
}

// echoState is kept for a connection once it has sent something.
type echoState struct {
	pending []byte // echo the socket did not take yet; reading waits for it
	out     bool   // registered for EPOLLOUT while pending waits
	eof     bool   // the peer finished sending: close once pending is out
}

// watchedIn is a connection's registration: edge-triggered, so an idle
// connection never wakes the loop and a busy one is read until EAGAIN.
const watchedIn = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET

// newConnLoop listens on addr and opens the epoll set for the connections.
func newConnLoop(s *server, addr string, backlog int) (*connLoop, error) {
	lnFd, err := listenSocket(addr, backlog, unix.SOCK_NONBLOCK)
	if err != nil {
		return nil, err
	}
	// A non-blocking descriptor makes a pollable File: accept waits in Go's
	// netpoller. (net's listeners refuse RawConn.Read.)
	ln := os.NewFile(uintptr(lnFd), "listener")
	rc, err := ln.SyscallConn()
	if err != nil {
		ln.Close()
		return nil, err
	}
	sa, err := unix.Getsockname(lnFd)
	if err != nil {
		ln.Close()
		return nil, os.NewSyscallError("getsockname", err)
	}
	set, err := epoll.New()
	if err != nil {
		ln.Close()
		return nil, err
	}
	l := &connLoop{s: s, ln: ln, lnFd: lnFd, addr: net.TCPAddrFromAddrPort(sockaddr.From(sa)), set: set, rc: rc, greet: make([]byte, 0, 128),
		buf: make([]byte, 64<<10), state: map[int]*echoState{}}
	l.pfd[0] = unix.PollFd{Fd: int32(lnFd), Events: unix.POLLIN}
	l.pfd[1] = unix.PollFd{Fd: int32(set.Fd()), Events: unix.POLLIN}
	// Built once: a closure made per accept would be an allocation per connection.
	l.acceptFn = func(lfd uintptr) bool {
		for {
			fd, err := rawsock.Accept4(int(lfd), &l.rsa, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			if err != unix.EAGAIN {
				l.afd, l.aerr = fd, err
				return true
			}
			// During a ramp the next connection comes within milliseconds:
			// wait for it in poll(2) rather than park, whose wakeup is a trip
			// through the scheduler. Idle longer, and the netpoller waits.
			if ready, _ := rawsock.Poll(l.pfd[:], epoll.Spin); ready <= 0 {
				return false
			}
			if l.pfd[1].Revents != 0 {
				// Connections have events for run, which waits in the
				// netpoller. The target has one P and this loop holds it
				// (rawsock), so run would wait for sysmon's preemption, 10 ms
				// at a time: park on the listener, and the scheduler polls.
				// (Sleeping here and polling again spun forever once run had
				// returned with events unread: the listener's Close waits
				// for this callback to return.)
				return false
			}
		}
	}
	return l, nil
}

// Close closes the listener; connections stay until closeAll.
func (l *connLoop) Close() error { return l.ln.Close() }

// Addr is the listener's address.
func (l *connLoop) Addr() net.Addr { return l.addr }

func (l *connLoop) listenerFd() int { return l.lnFd }

func (l *connLoop) fd() int { return l.set.Fd() }

// accept waits for one connection and returns its bare descriptor.
func (l *connLoop) accept() (conn, error) {
	if err := l.rc.Read(l.acceptFn); err != nil {
		return conn{fd: -1}, err // the listener was closed
	}
	if l.aerr != nil {
		return conn{fd: -1}, os.NewSyscallError("accept4", l.aerr)
	}
	return conn{fd: l.afd, peer: unmapped(sockaddr.FromRaw(&l.rsa))}, nil
}

// unmapped names an IPv4 peer of a dual-stack listener as IPv4, as net does.
func unmapped(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// add greets a new connection and hands it to the loop. A peer that is
// already gone is closed at once.
func (l *connLoop) add(c conn, seq uint64) {
	if !l.s.cfg.Silent {
		l.greet = AppendGreeting(l.greet[:0], seq, c.peer)
		if _, err := rawsock.Write(c.fd, l.greet); err != nil {
			l.drop(c.fd)
			return
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ev := unix.EpollEvent{Events: watchedIn, Fd: int32(c.fd)}
	if err := l.set.Ctl(unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		fmt.Fprintf(l.s.cfg.Log, "target: %v\n", err)
		l.closeLocked(c.fd)
		return
	}
	for len(l.live) <= c.fd {
		l.live = append(l.live, false)
	}
	l.live[c.fd] = true
}

// discard closes a connection that is not kept (shed, or over the cap).
func (l *connLoop) discard(c conn) { rawsock.Close(c.fd) }

// run serves readiness events until ctx is done.
func (l *connLoop) run(ctx context.Context) {
	events := make([]unix.EpollEvent, 256)
	for ctx.Err() == nil {
		n, err := l.set.Wait(ctx, events, -1)
		if err != nil {
			fmt.Fprintf(l.s.cfg.Log, "target: %v\n", err)
			return
		}
		for _, ev := range events[:n] {
			l.service(int(ev.Fd))
		}
	}
}

// service echoes what a connection sent, waiting for the socket to drain
// when the echo does not fit, and closes it when the peer has finished.
func (l *connLoop) service(fd int) {
	st := l.state[fd]
	if st != nil && len(st.pending) > 0 {
		if !l.flush(fd, st) {
			return
		}
	}
	for {
		n, err := rawsock.Read(fd, l.buf)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			l.close(fd)
			return
		case n == 0:
			if st == nil || len(st.pending) == 0 {
				l.close(fd)
			} else {
				st.eof = true
			}
			return
		}
		if st == nil {
			// Echo must not wait for an ACK behind Nagle; set only for
			// connections that talk, so a held one costs no setsockopt.
			unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
			st = &echoState{}
			l.state[fd] = st
		}
		st.pending = append(st.pending[:0], l.buf[:n]...)
		if !l.flush(fd, st) {
			return
		}
	}
}

// flush writes what is pending; false if it could not all go (the loop
// then waits for EPOLLOUT) or the connection was closed.
func (l *connLoop) flush(fd int, st *echoState) bool {
	for len(st.pending) > 0 {
		n, err := rawsock.Write(fd, st.pending)
		switch {
		case errors.Is(err, unix.EAGAIN):
			if !st.out {
				st.out = true
				l.modify(fd, watchedIn|unix.EPOLLOUT)
			}
			return false
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			l.close(fd)
			return false
		}
		st.pending = st.pending[n:]
	}
	st.pending = st.pending[:0]
	if st.eof {
		l.close(fd)
		return false
	}
	if st.out {
		st.out = false
		l.modify(fd, watchedIn)
	}
	return true
}

func (l *connLoop) modify(fd int, events uint32) {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	l.set.Ctl(unix.EPOLL_CTL_MOD, fd, &ev)
}

func (l *connLoop) close(fd int) {
	delete(l.state, fd)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closeLocked(fd)
}

func (l *connLoop) closeLocked(fd int) {
	if fd < len(l.live) {
		l.live[fd] = false
	}
	l.drop(fd)
}

// drop closes a connection the target had counted as open.
func (l *connLoop) drop(fd int) {
	rawsock.Close(fd)
	l.s.connClosed()
}

// closeAll ends every connection and the epoll set; run and the accept
// loop have returned.
func (l *connLoop) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	quiet := l.s.cfg.QuietClose
	for fd, live := range l.live {
		if live {
			// EPERM on the first (no CAP_NET_ADMIN) closes the rest as usual.
			quiet = quiet && rawsock.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, 1) == nil
			l.closeLocked(fd)
		}
	}
	l.set.Close()
}
