// Package engine runs one connlimit run: it plans the processes a number
// of connections needs under the hard limit, starts the built-in target (or
// finds the processes behind --target), drives the generator in one process
// or several, samples both sides and the kernel while it runs, and writes
// the reports. The command line builds a Config and calls Run; nothing here
// parses flags or picks exit statuses.
package engine

import (
	"io"
	"net/netip"
	"time"

	"github.com/connlimit/connlimit/report"
	"github.com/connlimit/connlimit/target"
)

// Config is one run as asked. Zero values mean what the field says; NewPlan
// resolves them against this machine's limits.
type Config struct {
	Connections int     // attempts to make; at least 1
	Rate        float64 // attempts started per second; 0: as fast as possible
	// Concurrency is the connects in flight at most, in all; 0: the default
	// (loadgen.DefaultConcurrency), which each generator process gets whole.
	Concurrency int
	// ConnectTimeout and GreetingTimeout bound a handshake and the wait for
	// the probe's answer; 0: the defaults, ScaleTimeout when the run takes
	// several processes.
	ConnectTimeout, GreetingTimeout time.Duration
	Hold                            time.Duration // how long every connection is held; 0: only what already arrived is read

	// TargetNoFile is the built-in target's soft RLIMIT_NOFILE; 0: its
	// default (target.DefaultNoFile, or the hard limit when that is lower or
	// the run takes several target processes).
	TargetNoFile uint64
	// NoFile is the generator's own soft limit, lowered once the run has
	// started; 0: raised as the run needs.
	NoFile      uint64
	Procs       int // generator processes; 0: as many as the hard limit requires
	TargetProcs int // built-in target processes; 0: as many as the hard limit requires
	// RampProcs is how many generator processes connect at once; 0: auto (a
	// few per core without Rate), RampAll: all of them.
	RampProcs  int
	TargetPort int             // the built-in target's first port on 127.0.0.1; 0: any free port
	Behavior   target.Behavior // the built-in target at its limits; Silent is set by the plan

	// Report files; "" for none.
	CSV, Timeline, JSON, Plot string
	// JUnit and Prom are the run as JUnit XML and in the Prometheus text
	// format; Push is a Pushgateway's URL to push the same metrics to;
	// StepSummary is a file the run's Markdown summary is appended to
	// (GitHub's $GITHUB_STEP_SUMMARY). "" for none.
	JUnit, Prom, Push, StepSummary string
	Interval                       time.Duration // sampling interval; at least 10ms
	Quiet                          bool          // no progress display, no notes on stderr

	Target      string // HOST:PORT of a running server; "" for the built-in target
	TargetPIDs  []int  // the processes behind Target, when they cannot be found by socket inode
	AllowRemote bool   // Target may name an address that is not loopback

	// Probe is how a connection counts as served: connect, accept, greeting,
	// echo or http; "": greeting for the built-in target (accept once the run
	// takes several processes and the kernel can list accept queues),
	// connect for Target.
	Probe    string
	Payload  int    // bytes the echo probe sends
	MSS      int    // TCP_MAXSEG on every client socket; 0: leave it
	HTTPPath string // the path the http probe asks for
	// TLSServerName is the name the tls probe sends by SNI; "" takes the
	// target's host name (none for an address).
	TLSServerName string

	Gates           report.Gates
	Forward         bool         // a port forwarder between the generator and the built-in target
	ForwardNoFile   uint64       // the forwarder's soft limit; 0: the target's
	SkipMemoryCheck bool         // run even if the connections look too many for the machine
	Sources         []netip.Addr // source addresses to bind to in turn; nil: chosen on loopback when needed
	// PrivateNetNS says the run has a network namespace of its own: its
	// kernel counters are exact.
	PrivateNetNS bool

	// Shard makes the run one shard of a larger one: Connections and Rate
	// are then its share. nil: a whole run.
	Shard *Shard
	// ShardOut writes the summary as one line of JSON: "-" last on
	// stdout (for kubectl logs), or a file; "" for none.
	ShardOut string
}

// Shard is one shard of a run spread over processes or machines.
type Shard struct {
	Index, Count     int
	TotalConnections int
	TotalRate        float64
	// StartAt is when every shard starts its ramp, its tables grown
	// before; zero: at once.
	StartAt time.Time
	Run     string // the digest every shard of the run shares
	Host    string
}

// RampAll in Config.RampProcs lets every generator process connect at once.
const RampAll = -1

// Env is where a run happens.
type Env struct {
	Exe            string // the connlimit binary, for the target and worker children
	ProcRoot       string // /proc, or fixtures
	Temps          *report.Temps
	Stdout, Stderr io.Writer
}
