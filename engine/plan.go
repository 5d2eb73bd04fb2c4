package engine

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/connlimit/connlimit/internal/sockaddr"
	"github.com/connlimit/connlimit/limits"
	"github.com/connlimit/connlimit/loadgen"
	"github.com/connlimit/connlimit/target"
)

// GeneratorReserve is the descriptors a generator process needs besides its
// connections: stdio, the runtime's netpoller and cgroup files, its epoll,
// the target's pipes, report files.
const GeneratorReserve = 64

// MinGeneratorNoFile leaves the generator its own few descriptors (stdio,
// netpoller, sampler readers, the target's pipe) under a Config.NoFile.
const MinGeneratorNoFile = 16

// ScaleTimeout is the connect and reply timeout of multi-process runs that
// leave them unset: the cores are saturated and replies take longer than the
// defaults, and a slow answer must not read as a target that stopped accepting.
const ScaleTimeout = 10 * time.Second

// PerTupleBudget is the most connections one (source address, destination
// ip:port) pair gets when source addresses are chosen automatically: past
// about 14,000, connect() prefers even ports and every call scans.
const PerTupleBudget = 12000

// RampPerCPU is the generator processes per core that connect at once when
// the rate is not limited. The ramp saturates every core either way; with all
// of a million-connection run's 51 generators (and their targets) runnable
// at once, each Go process's sysmon ticks every 10 ms while it waits its
// turn, and the cores go from process to process.
const RampPerCPU = 8

// PlanInput is what a plan is made from: the run asked and the machine.
type PlanInput struct {
	Config Config
	NoFile limits.NoFile // the generator's limits before the run
	NumCPU int           // runtime.NumCPU(); 0 counts as 1
	// ListsQueues asks whether the kernel can list accept queues here
	// (sock_diag): probe accept is the default at scale only where it can.
	// Called only when the answer matters; nil means it can.
	ListsQueues func() error
}

// Plan is a run's processes and defaults, resolved for this machine: every
// zero of the Config that means "choose" is chosen here, in one place that
// run, limits and later shards share.
type Plan struct {
	// PerProc is the most connections one process holds: the hard limit
	// less GeneratorReserve.
	PerProc int
	// Procs and TargetProcs are the generator and built-in target
	// processes; RampProcs those connecting at once, 0 for all of them.
	Procs, TargetProcs, RampProcs int
	TargetNoFile                  uint64
	ConnectTimeout                time.Duration
	GreetingTimeout               time.Duration
	Concurrency                   int
	// PerWorkerConcurrency gives each generator process the whole of
	// Concurrency (the default), instead of a share of it.
	PerWorkerConcurrency bool
	Probe                string
	Sources              []netip.Addr
	// Notes say what the plan chose that the caller did not, one line each.
	Notes []string
}

// NewPlan resolves in.Config for the machine. Its errors are UsageErrors,
// or hard-limit errors that name the fix.
func NewPlan(in PlanInput) (Plan, error) {
	c, nf := in.Config, in.NoFile
	p := Plan{PerProc: int(nf.Hard) - GeneratorReserve, Procs: 1, TargetProcs: 1,
		TargetNoFile: c.TargetNoFile, ConnectTimeout: c.ConnectTimeout, GreetingTimeout: c.GreetingTimeout,
		Concurrency: c.Concurrency, Probe: c.Probe, Sources: c.Sources}
	note := func(format string, a ...any) { p.Notes = append(p.Notes, fmt.Sprintf(format, a...)) }
	builtin := c.Target == ""
	if p.TargetNoFile == 0 {
		p.TargetNoFile = target.DefaultNoFile
		if builtin && p.TargetNoFile > nf.Hard {
			note("the hard RLIMIT_NOFILE %d is below the built-in target's default %d: the target gets %d (raise it as root: ulimit -Hn %d)",
				nf.Hard, p.TargetNoFile, nf.Hard, p.TargetNoFile)
			p.TargetNoFile = nf.Hard
		}
	}

	// Generator processes: one unless the connections do not fit one
	// process's hard limit (or Procs says so).
	switch {
	case c.Procs > 0:
		p.Procs = c.Procs
	case p.PerProc > 0 && c.Connections > p.PerProc && c.NoFile == 0:
		p.Procs = ceilDiv(c.Connections, p.PerProc)
	}
	if p.Concurrency == 0 {
		p.Concurrency = loadgen.DefaultConcurrency
	}
	for _, d := range []struct {
		dst *time.Duration
		def time.Duration
	}{{&p.ConnectTimeout, loadgen.DefaultConnectTimeout}, {&p.GreetingTimeout, loadgen.DefaultGreetingTimeout}} {
		if *d.dst == 0 {
			*d.dst = d.def
			if p.Procs > 1 {
				*d.dst = max(d.def, ScaleTimeout)
			}
		}
	}
	if p.Procs > 1 {
		if c.NoFile > 0 {
			return p, usageErr("--nofile: shows one generator's own limit; want --procs 1 with it")
		}
		if each := ceilDiv(c.Connections, p.Procs); each > p.PerProc {
			return p, usageErr("--procs: %d processes would hold %d connections each, above the hard limit %d less %d for themselves; want at least %d",
				p.Procs, each, nf.Hard, GeneratorReserve, ceilDiv(c.Connections, p.PerProc))
		}
		p.PerWorkerConcurrency = c.Concurrency == 0
		p.RampProcs = rampProcs(c.RampProcs, p.Procs, c.Rate, in.NumCPU)
		ramp := ""
		if p.RampProcs > 0 {
			ramp = fmt.Sprintf(", %d connecting at once", p.RampProcs)
		}
		note("%d connections over %d generator processes (at most %d each, under the hard limit %d%s); timeouts %s unless set",
			c.Connections, p.Procs, ceilDiv(c.Connections, p.Procs), nf.Hard, ramp, ScaleTimeout)
	}

	// Built-in target processes: as many as the connections need at the
	// hard limit; once there are several, the run is about scale, so each
	// gets the hard limit unless TargetNoFile says otherwise.
	switch {
	case c.TargetProcs > 0:
		p.TargetProcs = c.TargetProcs
	case p.PerProc > 0 && c.Connections > p.PerProc:
		p.TargetProcs = ceilDiv(c.Connections, p.PerProc)
	}
	if builtin && p.TargetProcs > 1 {
		if c.TargetNoFile == 0 {
			p.TargetNoFile = nf.Hard
		}
		if c.Forward {
			return p, usageErr("--forward: works with one target process; want --target-procs 1")
		}
		note("%d built-in target processes, each on its own port with RLIMIT_NOFILE %d", p.TargetProcs, p.TargetNoFile)
	}

	// The probe. Several processes means the run is about scale. A greeting
	// costs each connection a data segment, its ACK and a read (~16% of the
	// ramp's CPU here); the kernel can tell which connections the targets
	// accepted without a byte on the wire, so served and queued keep their
	// meaning.
	if p.Probe == "" {
		p.Probe = "greeting"
		if !builtin {
			p.Probe = "connect"
		}
		if builtin && (p.Procs > 1 || p.TargetProcs > 1) {
			var err error
			if in.ListsQueues != nil {
				err = in.ListsQueues()
			}
			if err != nil {
				note("probe greeting: the kernel cannot list accept queues here (%v)", err)
			} else {
				p.Probe = "accept"
				note("probe accept: the targets stay silent and the kernel says which connections they accepted (--probe greeting to have each one answer)")
			}
		}
	}

	// Source addresses: on loopback, enough to keep every (source,
	// destination port) pair under the even-port cliff.
	dsts := p.TargetProcs
	if !builtin {
		dsts = 1
	}
	if sh := c.Shard; sh != nil && sh.Count > 1 && len(c.Sources) == 0 && loopback4(c.Target) {
		// Shards on one host take disjoint blocks, 127.(I+1).0.1 on: each
		// has the ephemeral ports of its own (source, target) pairs.
		if sh.Count > 254 {
			return p, usageErr("--shard: %d shards on this host's loopback: want at most 254 (each takes a 127.N.0.0/16 block), or --source-ips", sh.Count)
		}
		a := netip.AddrFrom4([4]byte{127, byte(sh.Index + 1), 0, 1})
		for range max(1, autoSources(c.Connections, dsts)) {
			p.Sources = append(p.Sources, a)
			a = a.Next()
		}
		note("shard %d of %d binds to %s-%s, a block of its own", sh.Index, sh.Count, p.Sources[0], p.Sources[len(p.Sources)-1])
	} else if n := autoSources(c.Connections, dsts); len(c.Sources) == 0 && n > 1 && (builtin || sockaddr.IsLoopbackHostPort(c.Target)) {
		for a, i := netip.MustParseAddr("127.0.0.2"), 0; i < n; a, i = a.Next(), i+1 {
			p.Sources = append(p.Sources, a)
		}
		note("%d source addresses (%s-%s) keep each (source, target port) pair under %d connections (connect() slows 10-25x past ~14000)",
			n, p.Sources[0], p.Sources[n-1], PerTupleBudget)
	}
	return p, nil
}

// apply is c with every choice of the plan made: the run's own copy.
func (p Plan) apply(c Config) Config {
	c.Procs, c.TargetProcs, c.RampProcs = p.Procs, p.TargetProcs, p.RampProcs
	c.TargetNoFile, c.ConnectTimeout, c.GreetingTimeout = p.TargetNoFile, p.ConnectTimeout, p.GreetingTimeout
	c.Concurrency, c.Probe, c.Sources = p.Concurrency, p.Probe, p.Sources
	c.Behavior.Silent = c.Target == "" && p.Silent()
	// Both ends of every connection are ours only with the built-in target
	// and no forwarder between.
	c.Behavior.QuietClose = c.Target == "" && !c.Forward
	return c
}

// Silent says whether the built-in target need not write: a client that
// only connects reads nothing, and the target's count (or the kernel) tells
// what it accepted.
func (p Plan) Silent() bool { return p.Probe == "connect" || p.Probe == "accept" }

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// autoSources is how many source addresses keep n connections to dsts
// destinations under PerTupleBudget per pair.
func autoSources(n, dsts int) int {
	return ceilDiv(n, PerTupleBudget*max(1, dsts))
}

// rampProcs is how many of n generator processes connect at once; 0 means
// all of them. A rate is shared by all of them, so auto keeps them all.
func rampProcs(asked, n int, rate float64, cpus int) int {
	k := n
	switch {
	case asked == RampAll:
	case asked == 0:
		if rate == 0 {
			k = RampPerCPU * max(1, cpus)
		}
	default:
		k = asked
	}
	if k >= n {
		return 0
	}
	return k
}

// loopback4 says whether HOST:PORT is an IPv4 loopback address (a name
// may resolve to ::1, where no block of sources exists).
func loopback4(hp string) bool {
	host, _, err := net.SplitHostPort(hp)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Is4() && a.IsLoopback()
}
