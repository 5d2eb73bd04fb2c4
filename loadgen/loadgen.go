// Package loadgen opens, holds and closes many TCP client connections and
// classifies every attempt by what happened to it. A held connection costs
// one descriptor and one Result: no goroutine, no buffer, no syscall until
// it is closed. On Linux one goroutine drives every socket through
// non-blocking connect() and an epoll loop of its own.
package loadgen

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults for Config fields left zero.
const (
	DefaultConnections     = 2000
	DefaultConcurrency     = 256
	DefaultConnectTimeout  = 2 * time.Second
	DefaultGreetingTimeout = time.Second
)

// Outcome is what happened to one connection attempt.
type Outcome uint8

// Outcomes, in report order. Pending is only seen while an attempt is under way.
const (
	Pending         Outcome = iota
	Served                  // the greeting arrived
	Queued                  // connected, no greeting: waiting in the target's accept queue
	ConnectTimeout          // the handshake did not complete in time (SYNs unanswered)
	Refused                 // RST to the SYN: nothing listening
	Closed                  // EOF or RST before or instead of the greeting
	Corrupt                 // the echo came back different from what was sent
	ClientFDLimit           // EMFILE in this process
	SystemFDLimit           // ENFILE: fs.file-max reached
	NoEphemeralPort         // EADDRNOTAVAIL: no local port left for this 4-tuple
	Other                   // anything else; Result.Errno keeps the errno
	Lost                    // made by a generator process that died before it could tell what happened
)

var outcomeNames = [...]string{"pending", "served", "queued", "connect-timeout", "refused", "closed", "corrupt",
	"client-fd-limit", "system-fd-limit", "no-ephemeral-port", "other", "lost"}

// Outcomes lists every final outcome in report order.
func Outcomes() []Outcome {
	return []Outcome{Served, Queued, ConnectTimeout, Refused, Closed, Corrupt, ClientFDLimit, SystemFDLimit, NoEphemeralPort, Other, Lost}
}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", o)
}

// Failed reports whether the attempt ended without a connection held open.
func (o Outcome) Failed() bool { return o != Served && o != Queued && o != Pending }

// Classify maps an error from socket(), connect() or a read to an outcome by
// its errno.
func Classify(err error) Outcome {
	switch {
	case err == nil:
		return Pending
	case errors.Is(err, syscall.EMFILE):
		return ClientFDLimit
	case errors.Is(err, syscall.ENFILE):
		return SystemFDLimit
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return NoEphemeralPort
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.Is(err, syscall.ETIMEDOUT):
		return ConnectTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return Closed
	default:
		return Other
	}
}

// Result is one attempt. Durations are measured on the monotonic clock.
type Result struct {
	Seq       uint32 // 1-based attempt number
	FD        int32  // descriptor the attempt used; -1 if socket() failed
	TargetSeq uint32 // the target's accept number, from its greeting
	Status    uint16 // HTTP status from the http probe; 0 otherwise
	Dst       uint16 // index of the attempt's destination in Config.Targets
	Outcome   Outcome
	phase     phase
	// Demoted says a Closed attempt had been answered by the probe: the
	// target closed it during the hold, not at the probe. (A probe served at
	// connect, such as connect, has had no answer: a close then is a refusal.)
	Demoted bool
	// The local address (Local, SetLocal), with Config.LocalAddrs only, kept
	// without netip.Addr's zone handle: 16 bytes fewer an attempt. The
	// Results are most of what a held connection costs the generator.
	localKind uint8 // 0 none, 4, 6
	localPort uint16
	localIP   [16]byte
	Errno     syscall.Errno // 0 unless the outcome came from an error
	// Start is when socket() was called, since the generator started.
	Start time.Duration
	// Connect is the handshake time; 0 if it never completed.
	Connect time.Duration
	// Greeting is from handshake to the probe's verdict on the reply (the
	// greeting, the echo, the HTTP status line); 0 if none came.
	Greeting time.Duration
}

// Local is the attempt's local address; invalid when it was not read.
func (r *Result) Local() netip.AddrPort {
	switch r.localKind {
	case 4:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(r.localIP[:4])), r.localPort)
	case 6:
		return netip.AddrPortFrom(netip.AddrFrom16(r.localIP), r.localPort)
	}
	return netip.AddrPort{}
}

// SetLocal records the attempt's local address (without an IPv6 zone).
func (r *Result) SetLocal(a netip.AddrPort) {
	r.localKind, r.localPort, r.localIP = 0, 0, [16]byte{}
	switch ip := a.Addr(); {
	case !a.IsValid():
	case ip.Is4():
		a4 := ip.As4() // not AsSlice, which allocates: this runs once a connection
		r.localKind, r.localPort = 4, a.Port()
		copy(r.localIP[:], a4[:])
	default:
		r.localKind, r.localPort, r.localIP = 6, a.Port(), ip.As16()
	}
}

type phase uint8

const (
	phaseIdle phase = iota
	phaseConnecting
	phaseReply // connected, waiting for the probe's verdict
	phaseHeld  // served; watched for the target closing it
	phaseDone
)

// Config describes one generator.
type Config struct {
	Target netip.AddrPort
	// Targets, when set, replaces Target: attempt i goes to Targets[i%len].
	Targets []netip.AddrPort
	// Sources, when set, binds every socket to one of these addresses
	// (IP_BIND_ADDRESS_NO_PORT: the port is picked at connect time, per
	// 4-tuple), so each (source, destination) pair has its own ephemeral
	// ports. Attempt i uses Sources[(i/len(Targets))%len].
	Sources     []netip.Addr
	Connections int // exactly this many attempts; DefaultConnections when 0
	// Rate is attempts started per second; 0 starts them as fast as Concurrency allows.
	Rate float64
	// Concurrency caps connects in flight; DefaultConcurrency when 0.
	Concurrency    int
	ConnectTimeout time.Duration // DefaultConnectTimeout when 0
	// GreetingTimeout bounds the wait for the probe's verdict after connecting;
	// DefaultGreetingTimeout when 0.
	GreetingTimeout time.Duration
	// Probe tells served from queued; GreetingProbe{} (any line) when nil.
	Probe Probe
	// MSS, when above 0, is set as TCP_MAXSEG on every socket before connect.
	MSS int
	// Segments asks for TCP_INFO of every served connection (see Generator.Segments).
	Segments bool
	// LocalAddrs records each connection's local address (one getsockname
	// per connection); the per-attempt CSV needs it, the counts do not.
	LocalAddrs bool
	// QuietClose makes Close end each held connection in TCP repair mode
	// (TCP_REPAIR, which needs CAP_NET_ADMIN): nothing is sent and the peer
	// is not woken, so a million connections are torn down with no reset to
	// deliver. Only for a peer that is connlimit's own target and closes its
	// ends the same way: any other server would hold its end forever.
	// Without the capability Close resets, as without QuietClose.
	QuietClose bool
	// Epoch, when set, is the time Result.Start counts from, so the results
	// of generators in several processes can be merged in time order. The
	// Rate counts from Open all the same.
	Epoch time.Time
	// Counters, when set, is where the running totals are kept (zeroed
	// memory the caller owns, such as a page its parent maps too).
	Counters *Counters
	// Settle, when set, is asked every SettleEvery once every attempt has
	// started and none is still connecting, while some wait for the
	// probe's answer: given their local addresses and destinations, true
	// says none of them will be answered (they wait in the accept queue
	// of a target that cannot accept), and they count as Queued at once
	// instead of at GreetingTimeout.
	Settle func(waiting []Waiting) bool
}

// Waiting is a connection that waits for the probe's answer.
type Waiting struct {
	Local netip.AddrPort
	Dst   int // index into Config.Targets
}

// SettleEvery is how often Config.Settle is asked.
const SettleEvery = 20 * time.Millisecond

// SegInfo is what TCP_INFO says of one connection once its probe was answered.
type SegInfo struct {
	BytesSent     uint32 // tcpi_bytes_sent
	BytesReceived uint32 // tcpi_bytes_received
	MSS           uint16 // tcpi_snd_mss: payload bytes per segment actually used
	DataSegsOut   uint32 // tcpi_data_segs_out: segments that carried data, not SYN or pure ACKs
	DataSegsIn    uint32
	Retrans       uint32 // tcpi_total_retrans
}

func (c Config) withDefaults() Config {
	if c.Connections <= 0 {
		c.Connections = DefaultConnections
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.GreetingTimeout <= 0 {
		c.GreetingTimeout = DefaultGreetingTimeout
	}
	if c.Probe == nil {
		c.Probe = GreetingProbe{}
	}
	return c
}

// Snapshot is the generator's counters at one moment. Served+Queued+Failed
// is the number of attempts with an outcome; Attempted-that is under way.
type Snapshot struct {
	Attempted  int64 // attempts started
	Connecting int64 // connects in flight
	Open       int64 // connected descriptors currently open
	Served     int64
	Queued     int64
	Failed     int64
	// ConnectTimeouts are the failed attempts whose handshake timed out.
	ConnectTimeouts int64
}

// Counters are a generator's running totals. They hold no pointers, so a
// caller may place them in memory shared with another process
// (Config.Counters) and read them there with Snapshot while the run goes on.
type Counters struct {
	attempted, connecting, open, served, queued, failed, timeouts atomic.Int64
}

// Snapshot reads the counters; safe from any goroutine.
func (c *Counters) Snapshot() Snapshot {
	return Snapshot{
		Attempted: c.attempted.Load(), Connecting: c.connecting.Load(), Open: c.open.Load(),
		Served: c.served.Load(), Queued: c.queued.Load(), Failed: c.failed.Load(),
		ConnectTimeouts: c.timeouts.Load(),
	}
}

// Generator runs one batch of attempts. Open, Hold, Close, Results and
// Reason must be called from one goroutine; Snapshot is safe from any.
type Generator struct {
	cfg     Config
	results []Result
	reasons map[int32]string // the target's words when it refused; rare, so not in Result
	segs    []SegInfo        // parallel to results when Config.Segments
	start   time.Time
	c       *Counters
	opened  bool // Open was called
	closed  bool
	e       *engine // set by Prepare, released by Close
}

// New allocates the per-attempt results up front, so memory does not grow
// during the run.
func New(cfg Config) (*Generator, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Targets) == 0 {
		cfg.Targets = []netip.AddrPort{cfg.Target}
	}
	if len(cfg.Targets) > 1<<16 {
		return nil, fmt.Errorf("loadgen: %d targets; at most 65536", len(cfg.Targets))
	}
	for _, t := range cfg.Targets {
		if !t.IsValid() {
			return nil, fmt.Errorf("loadgen: invalid target address %v", t)
		}
	}
	if cfg.Connections > 1<<31-1 {
		return nil, fmt.Errorf("loadgen: %d connections is more than one generator can track", cfg.Connections)
	}
	g := &Generator{cfg: cfg, results: make([]Result, cfg.Connections), reasons: map[int32]string{}, c: cfg.Counters}
	if g.c == nil {
		g.c = new(Counters)
	}
	if cfg.Segments {
		g.segs = make([]SegInfo, cfg.Connections)
	}
	return g, nil
}

// Attempts is a batch of attempts, in the order they were made. At gives
// one whole: its Result, what the target said, its TCP_INFO reading. They
// are kept in three parts only so that a million stay compact: a reason is
// rare, and a reading needs a payload.
type Attempts struct {
	Results []Result
	Reasons map[int32]string // by index into Results; nil or missing: nothing said
	Segs    []SegInfo        // parallel to Results; nil unless a payload was sent
}

// Attempt is one attempt whole.
type Attempt struct {
	Result
	// Reason is what the target said, or why the probe failed; "" when
	// there is nothing to say.
	Reason string
	// Seg is its TCP_INFO reading; zero when it has none (or the batch
	// took none: Attempts.Segs is nil).
	Seg SegInfo
}

// Len is the number of attempts.
func (a Attempts) Len() int { return len(a.Results) }

// At is attempt i (0-based).
func (a Attempts) At(i int) Attempt {
	at := Attempt{Result: a.Results[i], Reason: a.Reasons[int32(i)]}
	if i < len(a.Segs) {
		at.Seg = a.Segs[i]
	}
	return at
}

// Attempts returns the attempts made so far. Call it after Open; its
// Results are the generator's own (MarkQueued changes them).
func (g *Generator) Attempts() Attempts {
	a := Attempts{Results: g.Results(), Reasons: g.reasons}
	if g.segs != nil {
		a.Segs = g.segs[:len(a.Results)]
	}
	return a
}

// Snapshot reads the counters.
func (g *Generator) Snapshot() Snapshot { return g.c.Snapshot() }

// Epoch is the instant every Result.Start counts from; zero before Open.
func (g *Generator) Epoch() time.Time { return g.start }

// Results returns the attempts made so far, in order. Call it after Open.
func (g *Generator) Results() []Result {
	n := g.c.attempted.Load()
	return g.results[:n]
}

// MarkQueued turns served attempt i (0-based) into Queued: for a probe that
// serves at connect, the caller learned later that the target never
// accepted it (the kernel still had it in the accept queue). It reports
// whether the attempt was served. Call it after Open, from Open's goroutine.
func (g *Generator) MarkQueued(i int) bool {
	r := &g.results[i]
	if r.Outcome != Served {
		return false
	}
	r.Outcome = Queued
	g.c.served.Add(-1)
	g.c.queued.Add(1)
	return true
}

// demote turns a served connection the target closed during the hold into Closed.
func (g *Generator) demote(r *Result, errno syscall.Errno, answered bool) {
	g.c.served.Add(-1)
	g.c.failed.Add(1)
	r.Outcome, r.Errno, r.phase, r.Demoted = Closed, errno, phaseDone, answered
}

func (g *Generator) finish(r *Result, o Outcome, errno syscall.Errno) {
	r.Outcome, r.Errno, r.phase = o, errno, phaseDone
	switch o {
	case Served:
		g.c.served.Add(1)
	case Queued:
		g.c.queued.Add(1)
	case ConnectTimeout:
		g.c.timeouts.Add(1)
		g.c.failed.Add(1)
	default:
		g.c.failed.Add(1)
	}
}
