package loadgen

import (
	"context"
	"errors"
	"github.com/connlimit/connlimit/internal/epoll"
	"github.com/connlimit/connlimit/internal/rawsock"
	"github.com/connlimit/connlimit/internal/sockaddr"
	"github.com/connlimit/connlimit/limits"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxWait bounds one epoll_wait so cancellation is seen within this time.
const maxWait = 20 * time.Millisecond

// fdHeadroom is what the process holds besides the attempts' sockets.
const fdHeadroom = 256

// startBatch caps connects started between two polls, so completions are
// seen (and timed) promptly instead of after a long burst of connect().
const startBatch = 32

// rawAddr is a socket address as connect and bind take it, made once.
type rawAddr struct {
	rsa    unix.RawSockaddrAny
	len    uint32
	family int
}

func newRawAddr(ap netip.AddrPort) rawAddr {
	rsa, n, family := sockaddr.ToRaw(ap)
	return rawAddr{rsa, n, family}
}

// fifo holds attempt indexes in deadline order: every attempt waits the same
// timeout from a time that only grows, so the head always expires first.
type fifo struct {
	q    []int32
	head int
}

func (f *fifo) push(i int32) { f.q = append(f.q, i) }
func (f *fifo) empty() bool  { return f.head == len(f.q) }
func (f *fifo) peek() int32  { return f.q[f.head] }
func (f *fifo) pop() {
	f.head++
	if f.head == len(f.q) {
		f.q, f.head = f.q[:0], 0
	} else if f.head > 4096 && f.head > len(f.q)/2 {
		f.q, f.head = append(f.q[:0], f.q[f.head:]...), 0
	}
}

type engine struct {
	g        *Generator
	set      *epoll.Set
	dsts     []rawAddr // per Config.Targets
	srcs     []rawAddr // per Config.Sources
	next     int       // index of the next attempt to start
	pending  int       // attempts without an outcome
	connQ    fifo
	replyQ   fifo
	got      map[int32][]byte // reply bytes read so far; after serving, the first bytes of an unasked-for message
	unsent   map[int32][]byte // request bytes the socket has not taken yet
	talks    map[int32]Talk   // a dialogue's connections still talking
	dialogue Dialogue         // the probe, when it answers more than once
	maxReply int              // bytes a reply may take before the probe must decide: more for an echo of a large payload
	instant  bool             // the probe serves at connect, so bytes later are the target's own words
	buf      [4096]byte
	rsa      unix.RawSockaddrAny // getsockname's answer, reused: unix.Getsockname allocates two objects per call
	interval time.Duration       // between attempt starts; 0 = no rate limit
	paced    time.Duration       // when Open began, since g.start: the rate counts from here, not from an earlier epoch
	settleAt time.Duration       // when Config.Settle may be asked next
}

// Open makes every attempt, waits for each to connect and satisfy the probe
// or fail, and returns with the connected ones held open. If ctx ends first,
// attempts not yet started are not made, connects in flight end as Other
// (ECANCELED), connections still awaiting a reply count as Queued, and Open
// returns context.Cause(ctx); Results still accounts for every attempt it
// started. Open may be called once.
func (g *Generator) Open(ctx context.Context) error {
	if g.opened {
		return errors.New("loadgen: Open called twice")
	}
	g.opened = true
	if err := g.Prepare(); err != nil {
		return err
	}
	g.start = time.Now()
	if !g.cfg.Epoch.IsZero() {
		g.start = g.cfg.Epoch
	}
	g.e.paced = time.Since(g.start)
	return g.e.loop(ctx)
}

// Prepare does what Open needs before its first attempt, so that a caller
// that waits for a signal to start can do it first: it opens the epoll set
// and grows the descriptor table. Open calls it if it has not been called.
func (g *Generator) Prepare() error {
	if g.e != nil {
		return nil
	}
	set, err := epoll.New()
	if err != nil {
		return err
	}
	e := &engine{g: g, set: set, got: map[int32][]byte{}, unsent: map[int32][]byte{}, talks: map[int32]Talk{}}
	e.instant = !g.cfg.Probe.Judge(nil).More
	e.dialogue, _ = g.cfg.Probe.(Dialogue)
	e.maxReply = maxReply + len(g.cfg.Probe.Request())
	for _, t := range g.cfg.Targets {
		e.dsts = append(e.dsts, newRawAddr(t))
	}
	for _, a := range g.cfg.Sources {
		e.srcs = append(e.srcs, newRawAddr(netip.AddrPortFrom(a, 0)))
	}
	if g.cfg.Rate > 0 {
		e.interval = time.Duration(float64(time.Second) / g.cfg.Rate)
	}
	g.e = e
	// Before the clock starts: a table that doubles during the ramp stops
	// it for an RCU grace period each time. Without it the run is slower,
	// not wrong, so an error is not the run's.
	_ = limits.GrowFDTable(len(g.results) + fdHeadroom)
	return nil
}

// Hold keeps the connections open for d, watching the served ones: one the
// target closes or resets becomes Closed, with what it said first as the
// reason. Even a zero hold reads what has already arrived, so a reset that
// came after the last connect is not counted as served. It returns early
// with context.Cause(ctx) if ctx ends.
func (g *Generator) Hold(ctx context.Context, d time.Duration) error {
	e := g.e
	if e == nil || g.closed {
		return nil
	}
	events := make([]unix.EpollEvent, 512)
	deadline := time.Now().Add(d)
	for {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		left := max(time.Until(deadline), 0)
		n, err := e.set.Wait(ctx, events, left)
		if err != nil {
			return err
		}
		for _, ev := range events[:n] {
			e.handle(ev)
		}
		if left == 0 && n < len(events) {
			return nil
		}
	}
}

func (e *engine) loop(ctx context.Context) error {
	g := e.g
	events := make([]unix.EpollEvent, 512)
	for {
		if ctx.Err() != nil {
			e.abort()
			return context.Cause(ctx)
		}
		now := time.Since(g.start)
		for b := 0; b < startBatch && e.next < len(g.results) && int(g.c.connecting.Load()) < g.cfg.Concurrency &&
			(e.interval == 0 || now >= e.due()); b++ {
			e.startAttempt()
		}
		now = time.Since(g.start)
		e.expire(now)
		e.settle(now)
		if e.next == len(g.results) && e.pending == 0 {
			return nil
		}
		n, err := e.set.Poll(events, e.wait(now))
		if err != nil {
			e.abort()
			return err
		}
		for _, ev := range events[:n] {
			e.handle(ev)
		}
	}
}

// wait is how long the loop may sleep before it has work of its own: the
// next scheduled start or the earliest deadline.
func (e *engine) wait(now time.Duration) time.Duration {
	g := e.g
	wake := now + maxWait
	if e.next < len(g.results) && int(g.c.connecting.Load()) < g.cfg.Concurrency {
		wake = min(wake, e.due())
	}
	if !e.connQ.empty() {
		wake = min(wake, g.results[e.connQ.peek()].Start+g.cfg.ConnectTimeout)
	}
	if !e.replyQ.empty() {
		r := &g.results[e.replyQ.peek()]
		wake = min(wake, r.Start+r.Connect+g.cfg.GreetingTimeout)
	}
	if e.settling() {
		wake = min(wake, e.settleAt)
	}
	return max(wake-now, 0)
}

// settling says whether Config.Settle is to be asked: every attempt
// started, none connecting, some waiting for an answer.
func (e *engine) settling() bool {
	g := e.g
	return g.cfg.Settle != nil && e.next == len(g.results) && g.c.connecting.Load() == 0 && e.pending > 0
}

// settle asks Config.Settle whether the connections still waiting for an
// answer will ever get one; if not they are Queued now.
func (e *engine) settle(now time.Duration) {
	if !e.settling() || now < e.settleAt {
		return
	}
	e.settleAt = now + SettleEvery
	g := e.g
	var idx []int32
	var waiting []Waiting
	for _, i := range e.replyQ.q[e.replyQ.head:] {
		r := &g.results[i]
		if r.phase != phaseReply {
			continue
		}
		if !r.Local().IsValid() {
			r.SetLocal(e.localAddr(int(r.FD))) // once: Settle may be asked many times
		}
		local := r.Local()
		idx = append(idx, i)
		waiting = append(waiting, Waiting{Local: local, Dst: int(r.Dst)})
	}
	if len(waiting) == 0 || !g.cfg.Settle(waiting) {
		return
	}
	for _, i := range idx {
		e.forget(i)
		e.done(&g.results[i], Queued, 0)
	}
}

// due is when the next attempt may start under the rate limit.
func (e *engine) due() time.Duration { return e.paced + time.Duration(e.next)*e.interval }

func (e *engine) startAttempt() {
	g := e.g
	i := int32(e.next)
	e.next++
	r := &g.results[i]
	dst := int(i) % len(e.dsts)
	*r = Result{Seq: uint32(i) + 1, FD: -1, Start: time.Since(g.start), phase: phaseConnecting, Dst: uint16(dst)}
	g.c.attempted.Add(1)
	e.pending++
	d := &e.dsts[dst]
	fd, err := rawsock.Socket(d.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		e.fail(r, err)
		return
	}
	r.FD = int32(fd)
	if len(e.srcs) > 0 {
		// The port is left to connect(), which picks it per 4-tuple; a
		// plain bind would pick one unique across all destinations.
		src := &e.srcs[(int(i)/len(e.dsts))%len(e.srcs)]
		err := rawsock.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if err == nil {
			err = rawsock.Bind(fd, &src.rsa, src.len)
		}
		if err != nil {
			rawsock.Close(fd)
			e.fail(r, os.NewSyscallError("bind source address", err))
			return
		}
	}
	if mss := g.cfg.MSS; mss > 0 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_MAXSEG, mss); err != nil {
			rawsock.Close(fd)
			e.fail(r, os.NewSyscallError("setsockopt TCP_MAXSEG", err))
			return
		}
	}
	err = rawsock.Connect(fd, &d.rsa, d.len)
	switch {
	case err == nil:
		e.connected(i, r, false, 0)
	case errors.Is(err, unix.EINPROGRESS):
		if err := e.register(i, fd); err != nil {
			rawsock.Close(fd)
			e.fail(r, err)
			return
		}
		g.c.connecting.Add(1)
		e.connQ.push(i)
	default:
		rawsock.Close(fd)
		e.fail(r, err)
	}
}

func (e *engine) fail(r *Result, err error) {
	e.done(r, Classify(err), errnoOf(err))
}

func (e *engine) done(r *Result, o Outcome, errno syscall.Errno) {
	e.pending--
	e.g.finish(r, o, errno)
}

// watched are the events of a connection's one registration, edge-triggered
// for its whole life: no re-arming system call per step.
const watched = unix.EPOLLOUT | unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET

func (e *engine) register(i int32, fd int) error {
	ev := unix.EpollEvent{Events: watched, Fd: int32(fd), Pad: i}
	return e.set.Ctl(unix.EPOLL_CTL_ADD, fd, &ev)
}

func (e *engine) handle(ev unix.EpollEvent) {
	g := e.g
	i := ev.Pad
	r := &g.results[i]
	switch r.phase {
	case phaseConnecting:
		g.c.connecting.Add(-1)
		// Writable without an error flag means connected; only then can the
		// SO_ERROR call be spared, one system call per connection.
		var err error
		if ev.Events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			soerr, gerr := unix.GetsockoptInt(int(r.FD), unix.SOL_SOCKET, unix.SO_ERROR)
			err = gerr
			if err == nil && soerr != 0 {
				err = syscall.Errno(soerr)
			}
			if err == nil {
				err = syscall.ECONNRESET // hung up without a pending error
			}
		}
		if err != nil {
			rawsock.Close(int(r.FD))
			e.fail(r, err)
			return
		}
		e.connected(i, r, true, ev.Events)
	case phaseReply:
		if ev.Events&unix.EPOLLOUT != 0 && len(e.unsent[i]) > 0 && !e.send(i, r) {
			return
		}
		if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			e.readReply(i, r, ev.Events)
		}
	case phaseHeld:
		e.readHeld(i, r)
	}
}

// connected records the handshake, sends the probe's request and waits for
// its verdict; registered says whether the socket is already in the epoll
// set, events what the event that told of the connection also said.
func (e *engine) connected(i int32, r *Result, registered bool, events uint32) {
	g := e.g
	g.c.open.Add(1)
	r.Connect = time.Since(g.start) - r.Start
	if g.cfg.LocalAddrs {
		r.SetLocal(e.localAddr(int(r.FD)))
	}
	r.phase = phaseReply
	if !registered {
		if err := e.register(i, int(r.FD)); err != nil {
			e.end(i, r, Classify(err), errnoOf(err))
			return
		}
	}
	req, j := g.cfg.Probe.Request(), Judgement{More: true}
	if e.dialogue != nil {
		t := e.dialogue.Begin()
		e.talks[i] = t
		req, j = t.Step(nil)
	} else {
		j = g.cfg.Probe.Judge(nil)
	}
	if len(req) > 0 {
		e.unsent[i] = req
		if !e.send(i, r) {
			return
		}
	}
	if !j.More {
		e.verdict(i, r, j)
		if r.phase == phaseHeld && events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
			e.readHeld(i, r) // words or a close came with the handshake's edge: no other edge will tell
		}
		return
	}
	e.replyQ.push(i)
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP) != 0 {
		e.readReply(i, r, events) // the reply came with the handshake's edge: no other edge will tell
	}
}

// send writes what the socket takes of the request; false if the attempt ended.
func (e *engine) send(i int32, r *Result) bool {
	rest := e.unsent[i]
	n, err := rawsock.Write(int(r.FD), rest)
	switch {
	case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
		return true
	case err != nil:
		e.end(i, r, Classify(err), errnoOf(err))
		return false
	case n == len(rest):
		delete(e.unsent, i)
	default:
		e.unsent[i] = rest[n:]
	}
	return true
}

// readReply reads what the target sent and asks the probe about it. The
// registration is edge-triggered: it reads until the socket is drained or
// the probe has its verdict.
func (e *engine) readReply(i int32, r *Result, events uint32) {
	for {
		n, err := rawsock.Read(int(r.FD), e.buf[:])
		switch {
		case errors.Is(err, unix.EAGAIN):
			return // the next edge brings more
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			e.keepReason(i, e.got[i])
			e.end(i, r, Classify(err), errnoOf(err))
			return
		case n == 0:
			e.keepReason(i, e.got[i])
			e.end(i, r, Closed, 0)
			return
		}
		if t := e.talk(i); t != nil {
			out, j := t.Step(e.buf[:n])
			if len(out) > 0 {
				e.unsent[i] = append(e.unsent[i], out...)
				if !e.send(i, r) {
					return
				}
			}
			if !j.More {
				e.verdict(i, r, j)
				if r.phase == phaseHeld && (events&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 || n == len(e.buf)) {
					e.readHeld(i, r)
				}
				return
			}
			if n < len(e.buf) {
				return
			}
			continue
		}
		// Most replies arrive in one read: judge them in place, copying only
		// what must wait for more.
		got := e.buf[:n]
		if prev, ok := e.got[i]; ok {
			got = append(prev, got...)
		}
		j := e.g.cfg.Probe.Judge(got)
		if !j.More {
			e.verdict(i, r, j)
			// A close in the same edge, or bytes beyond a full read, would
			// bring no other edge: read on as a held connection.
			if r.phase == phaseHeld && (events&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 || n == len(e.buf)) {
				e.readHeld(i, r)
			}
			return
		}
		if len(e.got[i]) == 0 {
			got = append([]byte(nil), got...)
		}
		if len(got) > e.maxReply {
			e.g.reasons[i] = "no verdict in " + strconv.Itoa(e.maxReply) + " bytes"
			e.end(i, r, Other, unix.EPROTO)
			return
		}
		e.got[i] = got
		if n < len(e.buf) {
			return // drained: a short read empties the socket, and new bytes bring an edge
		}
	}
}

// verdict ends the reply phase: a served connection is held and watched,
// anything else is closed.
func (e *engine) verdict(i int32, r *Result, j Judgement) {
	g := e.g
	e.forget(i)
	if !e.instant {
		r.Greeting = time.Since(g.start) - r.Start - r.Connect
	}
	r.Status, r.TargetSeq = j.Status, j.TargetSeq
	if j.Reason != "" {
		g.reasons[i] = j.Reason
	}
	if j.Outcome != Served {
		e.end(i, r, j.Outcome, j.Errno)
		return
	}
	if g.segs != nil {
		// The probe is answered: every data segment of the exchange is counted.
		if ti, err := unix.GetsockoptTCPInfo(int(r.FD), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			g.segs[i] = SegInfo{BytesSent: uint32(ti.Bytes_sent), BytesReceived: uint32(ti.Bytes_received), MSS: uint16(ti.Snd_mss),
				DataSegsOut: ti.Data_segs_out, DataSegsIn: ti.Data_segs_in, Retrans: ti.Total_retrans}
		}
	}
	e.done(r, Served, 0)
	r.phase = phaseHeld // still registered: the next edge is the target's close, or words
}

// readHeld drains a served connection; EOF or an error means the target
// closed it, and it becomes Closed.
func (e *engine) readHeld(i int32, r *Result) {
	g := e.g
	for {
		n, err := rawsock.Read(int(r.FD), e.buf[:])
		switch {
		case errors.Is(err, unix.EAGAIN):
			return // drained; the registration stays
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil || n == 0:
			e.keepReason(i, e.got[i])
			delete(e.got, i)
			e.closeOpen(r)
			g.demote(r, errnoOf(err), !e.instant)
			return
		}
		// Only a probe that served at connect keeps what the target says
		// unasked ("max clients reached"); otherwise it is the rest of a reply.
		if e.instant && len(e.got[i]) < 120 {
			e.got[i] = append(e.got[i], e.buf[:min(n, 120)]...)
		}
	}
}

func (e *engine) keepReason(i int32, b []byte) {
	if len(b) > 0 {
		e.g.reasons[i] = Printable(b)
	}
}

// end closes a connected socket that will not be held and records its outcome.
func (e *engine) end(i int32, r *Result, o Outcome, errno syscall.Errno) {
	e.forget(i)
	e.closeOpen(r)
	e.done(r, o, errno)
}

// talk is attempt i's dialogue, nil for a probe that judges bytes: no map
// lookup per read on that path.
func (e *engine) talk(i int32) Talk {
	if e.dialogue == nil {
		return nil
	}
	return e.talks[i]
}

// forget drops what the reply phase kept for attempt i.
func (e *engine) forget(i int32) {
	delete(e.got, i)
	delete(e.unsent, i)
	if t := e.talks[i]; t != nil {
		t.Close()
		delete(e.talks, i)
	}
}

func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	errors.As(err, &errno)
	return errno
}

// closeOpen closes a connected socket that will not be held.
func (e *engine) closeOpen(r *Result) {
	rawsock.Close(int(r.FD))
	e.g.c.open.Add(-1)
}

// expire ends attempts whose deadline has passed: a connect that has not
// completed is a connect timeout; a connection with no greeting is queued
// and stays open, as the target may still accept it.
func (e *engine) expire(now time.Duration) {
	g := e.g
	for !e.connQ.empty() {
		r := &g.results[e.connQ.peek()]
		if r.phase == phaseConnecting {
			if r.Start+g.cfg.ConnectTimeout > now {
				break
			}
			rawsock.Close(int(r.FD))
			g.c.connecting.Add(-1)
			e.done(r, ConnectTimeout, unix.ETIMEDOUT)
		}
		e.connQ.pop()
	}
	for !e.replyQ.empty() {
		i := e.replyQ.peek()
		r := &g.results[i]
		if r.phase == phaseReply {
			if r.Start+r.Connect+g.cfg.GreetingTimeout > now {
				break
			}
			e.forget(i)
			e.done(r, Queued, 0)
		}
		e.replyQ.pop()
	}
}

// abort gives every attempt under way an outcome when the run is cancelled.
func (e *engine) abort() {
	g := e.g
	for i := range g.results[:e.next] {
		r := &g.results[i]
		switch r.phase {
		case phaseConnecting:
			rawsock.Close(int(r.FD))
			g.c.connecting.Add(-1)
			e.done(r, Other, unix.ECANCELED)
		case phaseReply:
			e.forget(int32(i))
			e.done(r, Queued, 0)
		}
	}
}

// Close resets every held connection (SO_LINGER 0: RST, no TIME_WAIT left to
// block the next run) and closes it; with Config.QuietClose it closes them
// in repair mode where the process may, which sends nothing. Calling Close
// again does nothing.
func (g *Generator) Close() error {
	if g.closed {
		return nil
	}
	g.closed = true
	if g.e != nil {
		defer g.e.set.Close()
	}
	var first error
	rst := &unix.Linger{Onoff: 1, Linger: 0}
	quiet := g.cfg.QuietClose
	for i := range g.Results() {
		r := &g.results[i]
		if r.Outcome != Served && r.Outcome != Queued {
			continue
		}
		fd := int(r.FD)
		// EPERM on the first (no CAP_NET_ADMIN) sets the rest on the reset.
		quiet = quiet && rawsock.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, 1) == nil
		if !quiet {
			if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, rst); err != nil && first == nil {
				first = os.NewSyscallError("setsockopt SO_LINGER", err)
			}
		}
		if err := unix.Close(fd); err != nil && first == nil {
			first = os.NewSyscallError("close", err)
		}
		g.c.open.Add(-1)
	}
	return first
}

// localAddr is the socket's local address, read into the engine's own
// buffer: no allocation per connection.
func (e *engine) localAddr(fd int) netip.AddrPort {
	l := uint32(unix.SizeofSockaddrAny)
	_, _, errno := unix.RawSyscall(unix.SYS_GETSOCKNAME, uintptr(fd), uintptr(unsafe.Pointer(&e.rsa)), uintptr(unsafe.Pointer(&l)))
	if errno != 0 {
		return netip.AddrPort{}
	}
	return sockaddr.FromRaw(&e.rsa)
}
