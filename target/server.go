// Package target is connlimit's built-in TCP server. It runs as its own
// process (connlimit target) with a soft RLIMIT_NOFILE of its own, greets
// every accepted connection with its accept sequence number, echoes what it
// reads, and reports in a machine-readable event stream exactly when and why
// accept() stopped succeeding. Process starts and stops it as a child.
package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/connlimit/connlimit/limits"
)

// Defaults for Config fields left zero.
const (
	DefaultNoFile        = 1024
	DefaultStatsInterval = 100 * time.Millisecond
	// MinNoFile leaves room for what every Go server holds before its first
	// connection (stdio, netpoller, runtime cgroup files, listener, events).
	MinNoFile = 16
)

// Backoff after an accept error, as net/http does: 5 ms doubling to 1 s.
const (
	backoffMin = 5 * time.Millisecond
	backoffMax = time.Second
)

// Policy is what the target does when accept() fails for lack of descriptors.
type Policy string

// Accept policies at EMFILE/ENFILE.
const (
	// PolicyBackoff waits 5 ms doubling to 1 s between tries, as net/http
	// does; pending clients wait in the accept queue.
	PolicyBackoff Policy = "backoff"
	// PolicyShed keeps one spare descriptor; at EMFILE it closes it, accepts,
	// closes the new connection at once and reopens the spare (libuv, libev):
	// clients get an immediate close instead of hanging.
	PolicyShed Policy = "shed"
	// PolicyStop closes the listener at the first EMFILE: later connects are refused.
	PolicyStop Policy = "stop"
)

// Policies lists the accepted policy names.
var Policies = []Policy{PolicyBackoff, PolicyShed, PolicyStop}

// ParsePolicy accepts one of Policies.
func ParsePolicy(s string) (Policy, error) { return parseName(s, Policies) }

// Config describes one target server.
type Config struct {
	// Addr is the listen address; "127.0.0.1:0" when empty.
	Addr string
	// NoFile is the soft RLIMIT_NOFILE set before anything is opened; 0 keeps
	// the current one.
	NoFile uint64
	// StatsInterval is how often a stats event is written; DefaultStatsInterval when 0.
	StatsInterval time.Duration
	// Counters, when set, is where the running totals are kept (zeroed
	// memory the caller owns, shared with a parent); no stats events are
	// written then: the parent reads the counters in place.
	Counters *Counters
	// Events receives one JSON event per line; nil discards them.
	Events io.Writer
	// EventsFd is the descriptor number behind Events, named in the fd inventory; -1 if none.
	EventsFd int
	// Log receives human-readable lines; nil discards them.
	Log io.Writer
	// ProcRoot is where proc is mounted; limits.DefaultProcRoot when empty.
	ProcRoot string
	// ForwardTo, when set, makes this a port forwarder: every accepted
	// connection is joined to a new connection to this fixed address, and
	// bytes are copied both ways. No greeting; never an open proxy.
	ForwardTo string
	Behavior
}

// Counters are a target's running totals. They hold no pointers, so a parent
// can place them in memory it maps too (Config.Counters) and read them
// whenever it samples; the target then writes no stats events.
type Counters struct {
	Accepted     atomic.Int64
	AcceptErrors atomic.Int64
	Shed         atomic.Int64
	Capped       atomic.Int64 // closed at once at the connection cap (CapClose)
	Open         atomic.Int64
	Forwarded    atomic.Int64 // ForwardTo: connections joined to the upstream
	DialErrors   atomic.Int64 // ForwardTo: upstream dials that failed
}

// CountersBlockSize is the shared block a parent maps for Counters: one page.
const CountersBlockSize = 4096

type server struct {
	cfg    Config
	events *eventWriter
	inv    *limits.Inventory
	lnFd   int
	soft   uint64
	spare  *os.File // PolicyShed's reserved descriptor
	// loop holds the greeting target's connections without a goroutine
	// each; nil for the forwarder, which copies in goroutines.
	loop *connLoop
	// atStart are the descriptors open before Serve listened: anything
	// there not explained by the runtime was inherited from the parent.
	atStart map[int]bool

	c           *Counters
	firstEMFILE atomic.Bool   // the first EMFILE/ENFILE was recorded
	slotFreed   chan struct{} // a connection ended; CapWait waits on it

	goLn net.Listener // the goroutine path's listener; nil with loop

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// listener is what the accept loop needs of either path's listener.
type listener interface {
	Close() error
	Addr() net.Addr
}

// conn is one accepted connection: a net.Conn on the goroutine path, a bare
// descriptor (and the peer's address) on the loop's.
type conn struct {
	c    net.Conn
	fd   int
	peer netip.AddrPort
}

func (s *server) accept() (conn, error) {
	if s.loop != nil {
		return s.loop.accept()
	}
	c, err := s.goLn.Accept()
	return conn{c: c, fd: -1}, err
}

// discard closes a connection that is not kept.
func (s *server) discard(c conn) {
	if c.c != nil {
		c.c.Close()
		return
	}
	s.loop.discard(c)
}

// connClosed counts a kept connection's end and wakes a cap that waits.
func (s *server) connClosed() {
	s.c.Open.Add(-1)
	select {
	case s.slotFreed <- struct{}{}:
	default:
	}
}

// Serve sets the descriptor limit, listens, and accepts until ctx is done.
// It then closes the listener and every connection, waits for its goroutines,
// writes an exit event and returns nil. Errors before listening are returned
// with the syscall that failed.
func Serve(ctx context.Context, cfg Config) error {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.StatsInterval <= 0 {
		cfg.StatsInterval = DefaultStatsInterval
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = limits.DefaultProcRoot
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.OnEMFILE == "" {
		cfg.OnEMFILE = PolicyBackoff
	}
	if cfg.OnMaxConns == "" {
		cfg.OnMaxConns = CapWait
	}
	role := "target"
	if cfg.ForwardTo != "" {
		role = "forwarder"
	}
	nf, err := limits.ReadNoFile()
	if cfg.NoFile > 0 {
		nf, err = limits.SetSoft(cfg.NoFile)
	}
	if err != nil {
		return fmt.Errorf("%s: set soft RLIMIT_NOFILE to %d: %w", role, cfg.NoFile, err)
	}
	s := &server{cfg: cfg, events: newEventWriter(cfg.Events), conns: make(map[net.Conn]struct{}),
		slotFreed: make(chan struct{}, 1), c: cfg.Counters}
	if s.c == nil {
		s.c = new(Counters)
	}
	// Opened before the listener so the inventory works at EMFILE.
	if s.inv, err = limits.OpenInventory(cfg.ProcRoot, "self"); err != nil {
		return fmt.Errorf("%s: %w", role, err)
	}
	defer s.inv.Close()
	// Every slot up to the limit now (GrowFDTable stops there), while no
	// client waits: a table that doubles as connections arrive stops accept
	// for an RCU grace period each time. An error only costs speed.
	_ = limits.GrowFDTable(math.MaxInt)
	s.atStart = map[int]bool{}
	if fds, err := s.inv.List(); err == nil {
		for _, fd := range fds {
			s.atStart[fd.Num] = true
		}
	}

	if cfg.OnEMFILE == PolicyShed {
		if s.spare, err = os.Open(os.DevNull); err != nil {
			return fmt.Errorf("%s: open spare descriptor: %w", role, err)
		}
		defer func() { s.spare.Close() }()
	}
	ln, err := s.listen(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w (is the port in use? choose another or 0)", role, err)
	}
	s.soft = nf.Soft
	fds, _ := s.inv.Count()
	if err := s.events.write(Event{Type: EventReady, PID: os.Getpid(), Addr: ln.Addr().String(),
		NoFileSoft: nf.Soft, NoFileHard: nf.Hard, FDsOpen: fds}); err != nil {
		ln.Close()
		s.closeLoop()
		return err
	}
	fmt.Fprintf(cfg.Log, "target pid %d listening on %s, soft limit %d, hard %d\n", os.Getpid(), ln.Addr(), nf.Soft, nf.Hard)

	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.Counters == nil {
		wg.Go(func() { s.statsLoop(ctx) })
	}
	if s.loop != nil {
		wg.Go(func() { s.loop.run(ctx) })
	}
	wg.Go(func() {
		<-ctx.Done()
		ln.Close()
		s.closeConns()
	})
	err = s.acceptLoop(ctx, ln, &wg)
	cancel()
	wg.Wait()
	s.closeLoop()
	if werr := s.events.write(s.snapshot(EventExit)); err == nil {
		err = werr
	}
	return err
}

// listen opens the listener: the connection loop's where there is one
// (Linux, not forwarding), else a net.Listener.
func (s *server) listen(ctx context.Context) (listener, error) {
	if s.cfg.ForwardTo == "" {
		l, err := newConnLoop(s, s.cfg.Addr, s.cfg.Backlog)
		if err != nil {
			return nil, err
		}
		if l != nil {
			s.loop, s.lnFd = l, l.listenerFd()
			return l, nil
		}
	}
	var err error
	if s.cfg.Backlog > 0 {
		s.goLn, err = listenBacklog(s.cfg.Addr, s.cfg.Backlog)
	} else {
		// No TCP keepalive: Go would set it with three or four setsockopt
		// calls per accepted connection, and a held test connection needs none.
		s.goLn, err = (&net.ListenConfig{KeepAlive: -1}).Listen(ctx, "tcp", s.cfg.Addr)
	}
	if err != nil {
		return nil, err
	}
	s.lnFd = listenerFd(s.goLn)
	return s.goLn, nil
}

func listenerFd(ln net.Listener) int {
	fd := -1
	if sc, ok := ln.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			_ = rc.Control(func(f uintptr) { fd = int(f) })
		}
	}
	return fd
}

// acceptLoop follows net/http's Serve: shutdown check first, back off on
// errors that a later accept can survive, reset the delay after a success.
func (s *server) acceptLoop(ctx context.Context, ln listener, wg *sync.WaitGroup) error {
	var delay time.Duration
	for {
		if !s.pace(ctx, ln) {
			return nil
		}
		c, err := s.accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !retryable(err) {
				return fmt.Errorf("target: %w", err)
			}
			s.c.AcceptErrors.Add(1)
			noFDs := errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
			if noFDs && s.firstEMFILE.CompareAndSwap(false, true) {
				s.recordFirstEMFILE(err, "accept")
			}
			if noFDs && s.cfg.OnEMFILE == PolicyStop {
				ln.Close()
				fmt.Fprintf(s.cfg.Log, "target: listener closed at the first %v (policy stop)\n", err)
				<-ctx.Done() // keep serving the connections already accepted
				return nil
			}
			if noFDs && s.cfg.OnEMFILE == PolicyShed {
				if err := s.shedOne(); err != nil {
					return err
				}
				continue
			}
			delay = min(max(2*delay, backoffMin), backoffMax)
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		delay = 0
		if s.atCap() && s.cfg.OnMaxConns == CapClose {
			s.discard(c)
			s.c.Capped.Add(1)
			continue
		}
		seq := s.c.Accepted.Add(1)
		s.c.Open.Add(1)
		if s.loop != nil {
			s.loop.add(c, uint64(seq))
			continue
		}
		s.mu.Lock()
		s.conns[c.c] = struct{}{}
		s.mu.Unlock()
		wg.Go(func() { s.handle(c.c, uint64(seq)) })
	}
}

func (s *server) atCap() bool {
	return s.cfg.MaxConns > 0 && s.c.Open.Load() >= int64(s.cfg.MaxConns)
}

// pace runs before each accept: the accept delay, then the connection cap.
// It returns false when the loop should end.
func (s *server) pace(ctx context.Context, ln listener) bool {
	if d := s.cfg.AcceptDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
	if !s.atCap() {
		return true
	}
	switch s.cfg.OnMaxConns {
	case CapStop:
		ln.Close()
		fmt.Fprintf(s.cfg.Log, "target: listener closed at the connection cap %d (policy stop)\n", s.cfg.MaxConns)
		<-ctx.Done() // keep serving the connections already accepted
		return false
	case CapWait:
		for s.atCap() {
			select {
			case <-ctx.Done():
				return false
			case <-s.slotFreed:
			}
		}
	}
	return true // CapClose: accept, then close
}

// shedOne frees the spare slot, accepts one pending connection and closes
// it at once, then takes the slot back. Accept blocks until a client comes
// if the queue was empty (at the limit accept fails even then), so this
// never spins.
func (s *server) shedOne() error {
	s.spare.Close()
	c, err := s.accept()
	if err == nil {
		s.discard(c)
		s.c.Shed.Add(1)
	}
	spare, serr := os.Open(os.DevNull)
	if serr != nil {
		return fmt.Errorf("target: reopen spare descriptor: %w", serr)
	}
	s.spare = spare
	if err != nil && !retryable(err) && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("target: %w", err)
	}
	return nil
}

func retryable(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// handle greets (unless Silent) and then echoes. Its buffer is small: a held connection
// should cost the target little beyond its descriptor.
func (s *server) handle(c net.Conn, seq uint64) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
		s.connClosed()
	}()
	if s.cfg.ForwardTo != "" {
		s.forward(c)
		return
	}
	buf := make([]byte, 0, 256)
	if !s.cfg.Silent {
		if _, err := c.Write(AppendGreeting(buf, seq, c.RemoteAddr().(*net.TCPAddr).AddrPort())); err != nil {
			return
		}
	}
	buf = buf[:cap(buf)]
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if werr := s.echo(c, buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// echoBuffers lend a large buffer for the moment data flows: an idle held
// connection keeps only its small one.
var echoBuffers = sync.Pool{New: func() any { return new([64 << 10]byte) }}

// echoDrain is how long echo waits for the rest of a burst that is already
// on its way, so it can send it back in full segments rather than in pieces
// the size of the small read buffer.
const echoDrain = 2 * time.Millisecond

// echo writes first back, with whatever else of the same burst arrives
// within echoDrain, in one write.
func (s *server) echo(c net.Conn, first []byte) error {
	big := echoBuffers.Get().(*[64 << 10]byte)
	defer echoBuffers.Put(big)
	n := copy(big[:], first)
	if len(first) == cap(first) { // the small buffer was full: more is likely queued
		c.SetReadDeadline(time.Now().Add(echoDrain))
		for n < len(big) {
			m, err := c.Read(big[n:])
			n += m
			if err != nil {
				break // the deadline, or an error the next read will see again
			}
		}
		c.SetReadDeadline(time.Time{})
	}
	_, err := c.Write(big[:n])
	return err
}

// closeLoop ends the loop's connections once nothing else uses them.
func (s *server) closeLoop() {
	if s.loop != nil {
		s.loop.closeAll()
	}
}

func (s *server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

func (s *server) snapshot(typ string) Event {
	fds, _ := s.inv.Count()
	return Event{Type: typ, Accepted: s.c.Accepted.Load(), AcceptErrors: s.c.AcceptErrors.Load(),
		Shed: s.c.Shed.Load(), Capped: s.c.Capped.Load(), Forwarded: s.c.Forwarded.Load(), DialErrors: s.c.DialErrors.Load(), Open: s.c.Open.Load(), FDsOpen: fds}
}

// spareFd is the shed policy's reserved descriptor number, -1 without one.
// Only the accept loop calls it (the spare changes there).
func (s *server) spareFd() int {
	if s.spare == nil {
		return -1
	}
	return int(s.spare.Fd())
}

func (s *server) loopFd() int {
	if s.loop == nil {
		return -1
	}
	return s.loop.fd()
}

// recordFirstEMFILE lists every descriptor at the moment of the failure and
// reports those that are not connections.
func (s *server) recordFirstEMFILE(err error, phase string) {
	ev := s.snapshot(EventFirstEMFILE)
	ev.Errno, ev.Phase = "EMFILE", phase
	if errors.Is(err, syscall.ENFILE) {
		ev.Errno = "ENFILE"
	}
	fds, lerr := s.inv.List()
	if lerr != nil {
		fmt.Fprintf(s.cfg.Log, "target: list descriptors at EMFILE: %v\n", lerr)
	}
	ev.FDsOpen = len(fds)
	for _, fd := range fds {
		if uint64(fd.Num) >= s.soft {
			ev.AboveLimitFDs = append(ev.AboveLimitFDs, fd)
			continue
		}
		ev.SlotsUsed++
		switch fd.Num {
		case s.lnFd:
			fd.Kind = "listener"
		case s.cfg.EventsFd:
			fd.Kind = "event pipe"
		case s.inv.Fd():
			fd.Kind = "fd inventory"
		case s.spareFd():
			fd.Kind = "spare (shed policy)"
		case s.loopFd():
			fd.Kind = "connection epoll"
		default:
			switch {
			case s.atStart[fd.Num] && (fd.Kind == limits.KindFile || fd.Kind == limits.KindPipe ||
				fd.Kind == limits.KindSocket || fd.Kind == limits.KindOther):
				fd.Kind = "inherited"
			case fd.Kind == limits.KindSocket:
				continue // a connection
			}
		}
		ev.OtherFDs = append(ev.OtherFDs, fd)
	}
	fmt.Fprintf(s.cfg.Log, "target: accept failed with %s after %d accepts: %d descriptors open, %d of them not connections\n",
		ev.Errno, ev.Accepted, ev.FDsOpen, len(ev.OtherFDs))
	if werr := s.events.write(ev); werr != nil {
		fmt.Fprintf(s.cfg.Log, "target: %v\n", werr)
	}
}

func (s *server) statsLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.events.write(s.snapshot(EventStats)); err != nil {
				return
			}
		}
	}
}
