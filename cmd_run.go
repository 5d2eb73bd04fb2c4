package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/connlimit/connlimit/limits"
	"github.com/connlimit/connlimit/loadgen"
	"github.com/connlimit/connlimit/report"
	"github.com/connlimit/connlimit/target"
)

// runConfig is the run command's flags.
type runConfig struct {
	Connections     int
	Rate            float64
	Concurrency     int
	ConnectTimeout  time.Duration
	GreetingTimeout time.Duration
	Hold            time.Duration
	TargetNoFile    uint64
	NoFile          uint64 // the generator's own soft limit; 0 = raise it as the run needs
	Procs           string
	TargetPort      int
	behaviorFlags
	behavior target.Behavior // from behaviorFlags, set by Validate
	probeSet bool            // --probe was given (or implied by --payload)
	CSV      string
	Timeline string
	JSON     string
	Plot     string
	Interval time.Duration
	Quiet    bool

	// External target, probe and CI gates.
	Target        string
	TargetPIDs    []int
	AllowRemote   bool
	Probe         string
	Payload       int
	MSS           int
	HTTPPath      string
	RequireServed int
	ExpectLimit   string
	MaxConnectP99 time.Duration
	gates         report.Gates

	Forward         bool
	ForwardNoFile   uint64 // 0: the target's
	SkipMemoryCheck bool
	SourceIPs       string
	sources         []netip.Addr
	procs           int // generator processes, resolved from Procs
	RampProcs       string
	rampProcs       int  // generator processes connecting at once, resolved from RampProcs; 0 = all
	perWorkerConc   bool // --concurrency left to its default: each worker gets all of it
	TargetProcs     string
	targetProcs     int // built-in target processes, resolved from TargetProcs

	NetNS     bool
	PortRange string
	Somaxconn int
	ports     limits.PortRange // parsed PortRange

	inNetNS bool // this process is the --netns child: the namespace is the run's own
}

// runEnv is what tests may replace; zero values mean the real thing.
type runEnv struct {
	targetExe string // binary with the target subcommand; os.Executable() when ""
	procRoot  string
	temps     *report.Temps // the report's temporary files, for a second interrupt to remove; nil: untracked
}

// generatorReserve is the descriptors the generator needs besides its
// connections: stdio, the runtime's netpoller and cgroup files, its epoll,
// the target's pipes, report files.
const generatorReserve = 64

// Accepted ranges, named in every error about the flag.
const (
	maxConnections = 10_000_000
	maxConcurrency = 1_000_000
	maxTimeout     = 10 * time.Minute
)

var runRanges = withBehaviorRanges(map[string]string{
	"connections":      fmt.Sprintf("an integer from 1 to %d", maxConnections),
	"rate":             "connections per second, 0 (as fast as possible) or more",
	"concurrency":      fmt.Sprintf("an integer from 1 to %d", maxConcurrency),
	"connect-timeout":  "a duration above 0 and at most 10m, such as 2s",
	"greeting-timeout": "a duration above 0 and at most 10m, such as 1s",
	"hold":             "a duration from 0 to 24h, such as 1s",
	"target-nofile":    fmt.Sprintf("an integer from %d to the hard RLIMIT_NOFILE", target.MinNoFile),
	"target-port":      "a port from 0 (any free port) to 65535",
	"interval":         "a duration from 10ms to 1m, such as 100ms",
	"nofile":           fmt.Sprintf("0 (raise as needed) or an integer from %d to the hard RLIMIT_NOFILE", minGeneratorNoFile),
	"target-procs":     "auto (as many built-in target processes as the hard limit requires) or an integer from 1 to 1024",
	"procs":            "auto (as many generator processes as the hard limit requires) or an integer from 1 to 1024",
	"ramp-procs":       "auto, all or an integer from 1 to 1024",
	"port-range":       "LOW-HIGH with 1024 <= LOW < HIGH <= 65535, such as 40000-40199; only with --netns",
	"somaxconn":        "an integer from 1 to 1048576; only with --netns",
	"target":           "HOST:PORT of a running server, such as 127.0.0.1:8080 (loopback unless --allow-remote)",
	"target-pid":       "the PID of a running process (repeatable)",
	"probe":            "connect, accept, greeting, echo or http",
	"payload":          "bytes from 1 to 65536",
	"mss":              "bytes from 88 to 32767 (TCP_MAXSEG), or 0 to leave it",
	"source-ips":       "addresses and ranges of this machine, such as 127.0.0.2-127.0.0.40,127.0.1.5",
	"forward-nofile":   fmt.Sprintf("0 (the target's) or an integer from %d to the hard RLIMIT_NOFILE; only with --forward", target.MinNoFile),
	"http-path":        "a path starting with /, such as /healthz",
	"require-served":   "an integer from 0 to --connections",
	"expect-limit":     strings.Join(report.LimitWords(), ", "),
	"max-connect-p99":  "a duration above 0, such as 50ms",
})

// builtinOnly are the flags that describe the built-in target.
var builtinOnly = []string{"target-nofile", "target-port", "target-procs", "on-emfile", "backlog", "max-conns", "on-max-conns", "accept-delay", "netns",
	"forward", "forward-nofile"}

// netnsTargetPort is the built-in target's port in a --netns namespace,
// where nothing else listens.
const netnsTargetPort = 80

// parsePortRange reads LOW-HIGH.
func parsePortRange(s string) (limits.PortRange, error) {
	lo, hi, ok := strings.Cut(s, "-")
	l, err1 := strconv.Atoi(lo)
	h, err2 := strconv.Atoi(hi)
	switch {
	case !ok || err1 != nil || err2 != nil:
		return limits.PortRange{}, fmt.Errorf("%q is not LOW-HIGH", s)
	case l < 1024 || h > 65535 || l >= h:
		return limits.PortRange{}, fmt.Errorf("%d-%d is out of range", l, h)
	}
	return limits.PortRange{Low: l, High: h}, nil
}

func validProcs(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= maxProcs
}

// perTupleBudget is the most connections one (source address, destination
// ip:port) pair gets when source addresses are chosen automatically: past
// about 14,000, connect() prefers even ports and every call scans.
const perTupleBudget = 12000

// autoSources is how many source addresses keep n connections to dsts
// destinations under perTupleBudget per pair.
func autoSources(n, dsts int) int {
	per := perTupleBudget * max(1, dsts)
	return (n + per - 1) / per
}

// scaleTimeout is the connect and reply timeout of multi-process runs that
// leave them unset.
const scaleTimeout = 10 * time.Second

// rampPerCPU is --ramp-procs auto's generator processes per core when the
// rate is not limited. The ramp saturates every core either way; with all
// of a million-connection run's 51 generators (and their targets) runnable
// at once, each Go process's sysmon ticks every 10 ms while it waits its
// turn, and the cores go from process to process.
const rampPerCPU = 8

// rampProcs is how many of n generator processes connect at once; 0 means
// all of them. A --rate is shared by all of them, so auto keeps them all.
func rampProcs(flag string, n int, rate float64) int {
	k := n
	switch flag {
	case "all":
	case "auto":
		if rate == 0 {
			k = rampPerCPU * runtime.NumCPU()
		}
	default:
		k, _ = strconv.Atoi(flag)
	}
	if k >= n {
		return 0
	}
	return k
}

// maxProcs bounds --procs.
const maxProcs = 1024

// minGeneratorNoFile leaves the generator its own few descriptors (stdio,
// netpoller, sampler readers, the target's pipe) under a --nofile.
const minGeneratorNoFile = 16

func runFlags(cfg *runConfig) *pflag.FlagSet {
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	fs.IntVar(&cfg.Connections, "connections", loadgen.DefaultConnections, "connections to open: exactly this many attempts")
	fs.Float64Var(&cfg.Rate, "rate", 0, "connection attempts started per second (0 = as fast as possible)")
	fs.IntVar(&cfg.Concurrency, "concurrency", loadgen.DefaultConcurrency, "connects in flight at most")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", loadgen.DefaultConnectTimeout, "give up on a handshake after this long")
	fs.DurationVar(&cfg.GreetingTimeout, "greeting-timeout", loadgen.DefaultGreetingTimeout, "after connecting, wait this long for the target's greeting")
	fs.DurationVar(&cfg.Hold, "hold", time.Second, "hold every connection open this long before closing them all")
	fs.Uint64Var(&cfg.TargetNoFile, "target-nofile", target.DefaultNoFile, "soft RLIMIT_NOFILE of the built-in target")
	fs.Uint64Var(&cfg.NoFile, "nofile", 0, "the generator's own soft RLIMIT_NOFILE, to show a client-side limit (0 = raise it as needed)")
	fs.StringVar(&cfg.TargetProcs, "target-procs", "auto", "built-in target processes, each on its own port: auto (as many as the hard RLIMIT_NOFILE requires) or N")
	fs.StringVar(&cfg.Procs, "procs", "auto", "generator processes: auto (as many as the hard RLIMIT_NOFILE requires) or N")
	fs.StringVar(&cfg.RampProcs, "ramp-procs", "auto", "generator processes connecting at once; the others wait, ready, for one to finish: auto (all with --rate, else a few per core), all or N")
	fs.IntVar(&cfg.TargetPort, "target-port", 0, "port of the built-in target on 127.0.0.1 (0 = any free port)")
	cfg.behaviorFlags.register(fs)
	fs.StringVar(&cfg.CSV, "csv", "", "write one row per attempt to this CSV file")
	fs.StringVar(&cfg.Timeline, "timeline", "", "write one row per --interval to this CSV file")
	fs.StringVar(&cfg.JSON, "json", "", "write the summary as JSON to this file")
	fs.StringVar(&cfg.Plot, "plot", "", "draw the run to this file (.svg or .png)")
	fs.StringVar(&cfg.SourceIPs, "source-ips", "", "bind client sockets to these source addresses in turn (IP_BIND_ADDRESS_NO_PORT): each gets its own ephemeral ports")
	fs.BoolVar(&cfg.SkipMemoryCheck, "skip-memory-check", false, "run even if the connections look too many for MemAvailable or fs.file-max")
	fs.BoolVar(&cfg.Forward, "forward", false, "put a TCP port forwarder (connlimit forward) between the generator and the built-in target")
	fs.Uint64Var(&cfg.ForwardNoFile, "forward-nofile", 0, "the forwarder's soft RLIMIT_NOFILE (0 = the target's)")
	fs.StringVar(&cfg.Target, "target", "", "HOST:PORT of a running server to test instead of the built-in target")
	fs.IntSliceVar(&cfg.TargetPIDs, "target-pid", nil, "the process(es) behind --target, when they cannot be found by socket inode")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "let --target name an address that is not loopback (a connection flood at someone's server is an attack: be sure)")
	fs.StringVar(&cfg.Probe, "probe", "", "how a connection counts as served: connect, accept (the kernel says the server accepted it), greeting (built-in default; accept once the run takes several processes), echo or http (--target default: connect)")
	fs.IntVar(&cfg.Payload, "payload", 16, "bytes the echo probe sends and wants back (given alone, it selects --probe echo)")
	fs.IntVar(&cfg.MSS, "mss", 0, "set TCP_MAXSEG on every client socket before connect, to see a stream leave in segments")
	fs.StringVar(&cfg.HTTPPath, "http-path", "/", "path the http probe asks for")
	fs.IntVar(&cfg.RequireServed, "require-served", 0, "CI gate: exit 1 if fewer connections were served")
	fs.StringVar(&cfg.ExpectLimit, "expect-limit", "", "CI gate: exit 1 unless first_limit is this verdict (none: no limit may be hit)")
	fs.DurationVar(&cfg.MaxConnectP99, "max-connect-p99", 0, "CI gate: exit 1 if the connect latency p99 is above this")
	fs.BoolVar(&cfg.NetNS, "netns", false, "run in a network namespace of its own (root): exact kernel counters, settable net sysctls")
	fs.StringVar(&cfg.PortRange, "port-range", "", "net.ipv4.ip_local_port_range in the --netns namespace, such as 40000-40199")
	fs.IntVar(&cfg.Somaxconn, "somaxconn", 0, "net.core.somaxconn in the --netns namespace")
	fs.BoolVar(&cfg.inNetNS, "netns-child", false, "internal: this is the namespaced child of --netns")
	_ = fs.MarkHidden("netns-child")
	fs.DurationVar(&cfg.Interval, "interval", 100*time.Millisecond, "sampling interval of the timeline and the progress line (children are read in place, not asked)")
	fs.BoolVarP(&cfg.Quiet, "quiet", "q", false, "no progress display")
	return fs
}

// flagError turns a pflag parse error into one line naming the accepted range.
func flagError(err error, cmd string, ranges map[string]string) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "unknown flag: --"); ok {
		for _, other := range []struct {
			cmd    string
			ranges map[string]string
		}{{"run", runRanges}, {"target", targetRanges}} {
			if _, ok := other.ranges[name]; ok && other.cmd != cmd {
				return usageErr("--%s: a flag of 'connlimit %s', not of 'connlimit %s' (see connlimit help %s)", name, other.cmd, cmd, cmd)
			}
		}
	}
	for name, r := range ranges {
		if strings.Contains(msg, `"--`+name+`"`) || strings.Contains(msg, "--"+name+":") {
			return usageErr("--%s: %s; want %s", name, lastPart(msg), r)
		}
	}
	return usageErr("%s (see connlimit help)", msg)
}

// lastPart drops pflag's strconv detail: `invalid argument "x" for "--n" flag: ...`.
func lastPart(msg string) string {
	if i := strings.Index(msg, " for "); i > 0 {
		return msg[:i]
	}
	return msg
}

// Validate checks every flag against its accepted range. Checks that need
// the process's limits are in preflight.
func (c *runConfig) Validate() error {
	bad := func(name string, v any) error { return usageErr("--%s %v: want %s", name, v, runRanges[name]) }
	switch {
	case c.Connections < 1 || c.Connections > maxConnections:
		return bad("connections", c.Connections)
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return bad("rate", c.Rate)
	case c.Concurrency < 1 || c.Concurrency > maxConcurrency:
		return bad("concurrency", c.Concurrency)
	case c.ConnectTimeout <= 0 || c.ConnectTimeout > maxTimeout:
		return bad("connect-timeout", c.ConnectTimeout)
	case c.GreetingTimeout <= 0 || c.GreetingTimeout > maxTimeout:
		return bad("greeting-timeout", c.GreetingTimeout)
	case c.Hold < 0 || c.Hold > 24*time.Hour:
		return bad("hold", c.Hold)
	case c.TargetNoFile < target.MinNoFile:
		return bad("target-nofile", c.TargetNoFile)
	case c.NoFile != 0 && c.NoFile < minGeneratorNoFile:
		return bad("nofile", c.NoFile)
	case c.Procs != "auto" && !validProcs(c.Procs):
		return bad("procs", c.Procs)
	case c.TargetProcs != "auto" && !validProcs(c.TargetProcs):
		return bad("target-procs", c.TargetProcs)
	case c.RampProcs != "auto" && c.RampProcs != "all" && !validProcs(c.RampProcs):
		return bad("ramp-procs", c.RampProcs)
	case c.TargetPort < 0 || c.TargetPort > 65535:
		return bad("target-port", c.TargetPort)
	case c.Interval < 10*time.Millisecond || c.Interval > time.Minute:
		return bad("interval", c.Interval)
	}
	var err error
	if c.behavior, err = c.behaviorFlags.behavior(); err != nil {
		return err
	}
	if c.PortRange != "" {
		if c.ports, err = parsePortRange(c.PortRange); err != nil {
			return usageErr("--port-range: %v; want %s", err, runRanges["port-range"])
		}
	}
	if c.Somaxconn < 0 || c.Somaxconn > maxBacklog {
		return bad("somaxconn", c.Somaxconn)
	}
	c.probeSet = c.Probe != ""
	switch c.Probe {
	case "":
		c.Probe = "greeting"
		if c.Target != "" {
			c.Probe = "connect"
		}
	case "connect", "accept", "greeting", "echo", "http":
	default:
		return usageErr("--probe: unknown probe %q; want %s", c.Probe, runRanges["probe"])
	}
	// A client that only connects reads nothing: the built-in target need
	// not write, and its accepted count (or the kernel) tells what it accepted.
	c.behavior.Silent = c.Target == "" && (c.Probe == "connect" || c.Probe == "accept")
	if c.Target == "" && c.Probe == "http" {
		return usageErr("--probe http: needs --target (the built-in target speaks its own line protocol); want connect, greeting or echo")
	}
	switch {
	case c.Payload < 1 || c.Payload > 65536:
		return bad("payload", c.Payload)
	case c.MSS != 0 && (c.MSS < 88 || c.MSS > 32767):
		return bad("mss", c.MSS)
	case c.ForwardNoFile != 0 && c.ForwardNoFile < target.MinNoFile:
		return bad("forward-nofile", c.ForwardNoFile)
	case c.ForwardNoFile != 0 && !c.Forward:
		return usageErr("--forward-nofile: valid only with --forward")
	case !strings.HasPrefix(c.HTTPPath, "/") || strings.ContainsAny(c.HTTPPath, " \r\n"):
		return bad("http-path", c.HTTPPath)
	case c.RequireServed < 0 || c.RequireServed > c.Connections:
		return usageErr("--require-served %d: want an integer from 0 to --connections (%d)", c.RequireServed, c.Connections)
	case c.MaxConnectP99 < 0:
		return bad("max-connect-p99", c.MaxConnectP99)
	}
	if c.SourceIPs != "" {
		if c.sources, err = parseAddrList(c.SourceIPs); err != nil {
			return usageErr("--source-ips: %v; want %s", err, runRanges["source-ips"])
		}
	}
	for _, pid := range c.TargetPIDs {
		if pid < 1 {
			return usageErr("--target-pid: %d; want %s", pid, runRanges["target-pid"])
		}
	}
	if c.ExpectLimit != "" && !slices.Contains(report.LimitWords(), c.ExpectLimit) {
		return usageErr("--expect-limit: unknown verdict %q; want one of %s", c.ExpectLimit, runRanges["expect-limit"])
	}
	c.gates.RequireServed, c.gates.ExpectLimit, c.gates.MaxConnectP99 = c.RequireServed, c.ExpectLimit, c.MaxConnectP99
	if c.Target != "" {
		_, port, err := net.SplitHostPort(c.Target)
		if err != nil {
			return usageErr("--target: %q: %v; want %s", c.Target, err, runRanges["target"])
		}
		if p, err := strconv.Atoi(port); err == nil && (p < 1 || p > 65535) {
			return usageErr("--target: %q: port %d is no port a server listens on; want %s", c.Target, p, runRanges["target"])
		}
	}
	if !c.NetNS {
		for flag, set := range map[string]bool{"port-range": c.PortRange != "", "somaxconn": c.Somaxconn != 0} {
			if set {
				return usageErr("--%s: valid only with --netns (it would change the host's setting)", flag)
			}
		}
	}
	if c.Plot != "" {
		if _, err := report.PlotFormat(c.Plot); err != nil {
			return usageErr("--plot: %v", err)
		}
	}
	return nil
}

// maxRunTime bounds how long the ramp of a --rate may take.
const maxRunTime = 24 * time.Hour

// checkCombinations refuses flags that would do nothing in the combination
// given: a user who passed them expects an effect they would not get.
func (c *runConfig) checkCombinations(changed func(string) bool) error {
	switch {
	case changed("payload") && c.Probe != "echo":
		return usageErr("--payload %d: only --probe echo sends a payload, and --probe is %s: drop --payload or use --probe echo", c.Payload, c.Probe)
	case changed("http-path") && c.Probe != "http":
		return usageErr("--http-path %q: only --probe http asks for a path, and --probe is %s: drop --http-path or use --probe http", c.HTTPPath, c.Probe)
	case changed("target-pid") && c.Target == "":
		return usageErr("--target-pid %v: names the process behind --target; the built-in target is known without it", c.TargetPIDs)
	case c.Rate > 0 && float64(c.Connections)/c.Rate > maxRunTime.Seconds():
		return usageErr("--rate %g: %d connections would take %s to start, over a day; want at least %.4g per second",
			c.Rate, c.Connections, (time.Duration(float64(c.Connections)/c.Rate) * time.Second).String(), float64(c.Connections)/maxRunTime.Seconds())
	}
	return nil
}

// outputFlags are the report paths by flag, in the order they are written.
func (c *runConfig) outputFlags() []struct{ flag, path string } {
	return []struct{ flag, path string }{{"csv", c.CSV}, {"timeline", c.Timeline}, {"json", c.JSON}, {"plot", c.Plot}}
}

// checkDistinct refuses two report flags that name one file, however spelt
// (./a.json, an absolute path, a symlink, a hard link): one would be lost.
func checkDistinct(outs []struct{ flag, path string }) error {
	for i, a := range outs {
		for _, b := range outs[i+1:] {
			if a.path != "" && b.path != "" && report.SameFile(a.path, b.path) {
				return usageErr("--%s %s and --%s %s name the same file: want distinct paths", a.flag, a.path, b.flag, b.path)
			}
		}
	}
	return nil
}

// outputs are the report files, created before the run and committed after.
type outputs struct {
	csv, timeline, json, plot *report.Output
}

func openOutputs(c *runConfig, temps *report.Temps) (*outputs, error) {
	if err := checkDistinct(c.outputFlags()); err != nil {
		return nil, err
	}
	o := &outputs{}
	dsts := []**report.Output{&o.csv, &o.timeline, &o.json, &o.plot}
	for i, f := range c.outputFlags() {
		if f.path == "" {
			continue
		}
		out, err := report.CreateOutput(f.path, temps)
		if err != nil {
			o.abort()
			if errors.Is(err, report.ErrIsDirectory) {
				return nil, usageErr("--%s: %v; want a file path", f.flag, err)
			}
			return nil, usageErr("--%s: %v; want a path in a writable directory", f.flag, err)
		}
		*dsts[i] = out
	}
	return o, nil
}

func (o *outputs) all() []*report.Output {
	var all []*report.Output
	for _, out := range []*report.Output{o.csv, o.timeline, o.json, o.plot} {
		if out != nil {
			all = append(all, out)
		}
	}
	return all
}

func (o *outputs) abort() {
	for _, out := range o.all() {
		out.Abort()
	}
}

func runRun(ctx context.Context, args []string, stdout, stderr io.Writer, env runEnv) error {
	var cfg runConfig
	fs := runFlags(&cfg)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stdout, usageText, "\nrun flags:\n", fs.FlagUsages())
			return errHelp
		}
		return flagError(err, "run", runRanges)
	}
	if fs.NArg() > 0 {
		return usageErr("run takes no arguments, got %q", fs.Args())
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Target != "" {
		if cfg.NetNS {
			return usageErr("--netns runs the built-in target in a network namespace of its own, where --target on the host cannot be reached: drop one of them")
		}
		for _, name := range builtinOnly {
			if fs.Changed(name) {
				return usageErr("--%s describes the built-in target; it cannot be used with --target", name)
			}
		}
	}
	cfg.gates.HasRequireServed = fs.Changed("require-served")
	if fs.Changed("payload") && !fs.Changed("probe") {
		cfg.Probe = "echo" // a payload is sent to be echoed
		cfg.probeSet = true
	}
	if err := cfg.checkCombinations(fs.Changed); err != nil {
		return err
	}
	if env.procRoot == "" {
		env.procRoot = limits.DefaultProcRoot
	}
	if env.targetExe == "" {
		exe, err := os.Executable()
		if err != nil {
			return runtimeErr(fmt.Errorf("find own binary to start the target: %w", err))
		}
		env.targetExe = exe
	}
	switch {
	case cfg.NetNS && !cfg.inNetNS:
		return runInNetNS(ctx, env.targetExe, args, stdout, stderr)
	case cfg.inNetNS:
		if err := setupNetNS(env.procRoot, cfg.ports, cfg.Somaxconn); err != nil {
			return runtimeErr(fmt.Errorf("--netns: %w", err))
		}
		if cfg.TargetPort == 0 {
			// Below any --port-range, so no client port is lost to the listener.
			cfg.TargetPort = netnsTargetPort
		}
	}

	if err := checkSources(cfg.sources); err != nil {
		return usageErr("--source-ips: %v; want %s", err, runRanges["source-ips"])
	}

	// Pre-flight: read the limits (the inherited soft limit before any
	// Setrlimit), then make sure both processes fit under the hard limit.
	inh, inhFrom := limits.InheritedSoft(ctx, env.procRoot)
	nf, err := limits.ReadNoFile()
	if err != nil {
		return runtimeErr(err)
	}
	nf.Inherited, nf.InheritedFrom = inh, inhFrom
	sysctls, _ := limits.ReadSysctls(env.procRoot) // unreadable values stay -1 and are shown so
	// A hard limit is the environment's, not a flag's fault: exit 3 with the fix.
	aboveHard := func(flag string, v uint64) error {
		if sysctls.NrOpen > 0 && v > uint64(sysctls.NrOpen) {
			// No hard limit can be raised that far: the value is wrong, not the environment.
			return usageErr("--%s %d: is above fs.nr_open %d, the most any hard limit can be; want %s", flag, v, sysctls.NrOpen, runRanges[flag])
		}
		return runtimeErr(fmt.Errorf("--%s %d is above the hard RLIMIT_NOFILE %d: lower it to at most %d, or raise the hard limit (as root: ulimit -Hn %d; systemd: LimitNOFILE=%d)",
			flag, v, nf.Hard, nf.Hard, v, v))
	}
	if cfg.Target == "" && cfg.TargetNoFile > nf.Hard {
		if fs.Changed("target-nofile") {
			return aboveHard("target-nofile", cfg.TargetNoFile)
		}
		// The default does not fit: the target gets what there is, and the run says so.
		if !cfg.Quiet {
			fmt.Fprintf(stderr, "connlimit: the hard RLIMIT_NOFILE %d is below the built-in target's default %d: the target gets %d (raise it as root: ulimit -Hn %d)\n",
				nf.Hard, cfg.TargetNoFile, nf.Hard, cfg.TargetNoFile)
		}
		cfg.TargetNoFile = nf.Hard
	}
	if cfg.ForwardNoFile > nf.Hard {
		return aboveHard("forward-nofile", cfg.ForwardNoFile)
	}
	if cfg.NoFile > nf.Hard {
		return aboveHard("nofile", cfg.NoFile)
	}
	if !cfg.SkipMemoryCheck {
		if err := fitCheck(&cfg, sysctls, env.procRoot); err != nil {
			return err
		}
	}
	// Generator processes: one unless the connections do not fit one
	// process's hard limit (or --procs says so).
	perProc := int(nf.Hard) - generatorReserve
	cfg.procs = 1
	if cfg.Procs == "auto" && perProc > 0 && cfg.Connections > perProc && cfg.NoFile == 0 {
		cfg.procs = (cfg.Connections + perProc - 1) / perProc
	} else if cfg.Procs != "auto" {
		cfg.procs, _ = strconv.Atoi(cfg.Procs)
	}
	if cfg.procs > 1 {
		if cfg.NoFile > 0 {
			return usageErr("--nofile: shows one generator's own limit; want --procs 1 with it")
		}
		if each := (cfg.Connections + cfg.procs - 1) / cfg.procs; each > perProc {
			return usageErr("--procs: %d processes would hold %d connections each, above the hard limit %d less %d for themselves; want at least %d",
				cfg.procs, each, nf.Hard, generatorReserve, (cfg.Connections+perProc-1)/perProc)
		}
		// At this scale the cores are saturated and replies take longer than
		// the 1 s default: waiting longer keeps a slow answer from reading as
		// a target that stopped accepting.
		cfg.perWorkerConc = !fs.Changed("concurrency")
		for _, d := range []struct {
			flag string
			dst  *time.Duration
		}{{"connect-timeout", &cfg.ConnectTimeout}, {"greeting-timeout", &cfg.GreetingTimeout}} {
			if !fs.Changed(d.flag) {
				*d.dst = max(*d.dst, scaleTimeout)
			}
		}
		cfg.rampProcs = rampProcs(cfg.RampProcs, cfg.procs, cfg.Rate)
		if !cfg.Quiet {
			ramp := ""
			if cfg.rampProcs > 0 {
				ramp = fmt.Sprintf(", %d connecting at once", cfg.rampProcs)
			}
			fmt.Fprintf(stderr, "connlimit: %d connections over %d generator processes (at most %d each, under the hard limit %d%s); timeouts %s unless set\n",
				cfg.Connections, cfg.procs, (cfg.Connections+cfg.procs-1)/cfg.procs, nf.Hard, ramp, scaleTimeout)
		}
	}
	// Built-in target processes: as many as the connections need at the
	// hard limit; once there are several, the run is about scale, so each
	// gets the hard limit unless --target-nofile says otherwise.
	cfg.targetProcs = 1
	if cfg.TargetProcs == "auto" && perProc > 0 && cfg.Connections > perProc {
		cfg.targetProcs = (cfg.Connections + perProc - 1) / perProc
	} else if cfg.TargetProcs != "auto" {
		cfg.targetProcs, _ = strconv.Atoi(cfg.TargetProcs)
	}
	if cfg.Target == "" && cfg.targetProcs > 1 {
		if !fs.Changed("target-nofile") {
			cfg.TargetNoFile = nf.Hard
		}
		if cfg.Forward {
			return usageErr("--forward: works with one target process; want --target-procs 1")
		}
		if !cfg.Quiet {
			fmt.Fprintf(stderr, "connlimit: %d built-in target processes, each on its own port with RLIMIT_NOFILE %d\n", cfg.targetProcs, cfg.TargetNoFile)
		}
	}
	// Several processes means the run is about scale. A greeting costs each
	// connection a data segment, its ACK and a read (~16% of the ramp's CPU
	// here); the kernel can tell which connections the targets accepted
	// without a byte on the wire, so served and queued keep their meaning.
	if cfg.Target == "" && !cfg.probeSet && (cfg.procs > 1 || cfg.targetProcs > 1) {
		if err := sockDiagAnswers(); err != nil {
			if !cfg.Quiet {
				fmt.Fprintf(stderr, "connlimit: probe greeting: the kernel cannot list accept queues here (%v)\n", err)
			}
		} else {
			cfg.Probe, cfg.behavior.Silent = "accept", true
			if !cfg.Quiet {
				fmt.Fprintf(stderr, "connlimit: probe accept: the targets stay silent and the kernel says which connections they accepted (--probe greeting to have each one answer)\n")
			}
		}
	}
	// Source addresses: on loopback, enough to keep every (source,
	// destination port) pair under the even-port cliff.
	dsts := cfg.targetProcs
	if cfg.Target != "" {
		dsts = 1
	}
	if n := autoSources(cfg.Connections, dsts); cfg.SourceIPs == "" && n > 1 && (cfg.Target == "" || isLoopbackHostPort(cfg.Target)) {
		for a, i := netip.MustParseAddr("127.0.0.2"), 0; i < n; a, i = a.Next(), i+1 {
			cfg.sources = append(cfg.sources, a)
		}
		if err := checkSources(cfg.sources); err != nil {
			return runtimeErr(fmt.Errorf("source addresses for %d connections: %w; pass --source-ips", cfg.Connections, err))
		}
		if !cfg.Quiet {
			fmt.Fprintf(stderr, "connlimit: %d source addresses (%s-%s) keep each (source, target port) pair under %d connections (connect() slows 10-25x past ~14000)\n",
				n, cfg.sources[0], cfg.sources[n-1], perTupleBudget)
		}
	}
	if cfg.NoFile == 0 && cfg.procs == 1 {
		need := uint64(cfg.Connections) + generatorReserve
		raised, err := limits.EnsureSoft(need)
		if err != nil {
			var hl *limits.HardLimitError
			if errors.As(err, &hl) && nf.Hard <= generatorReserve {
				return runtimeErr(fmt.Errorf("the hard RLIMIT_NOFILE %d leaves no room for connections beside the %d descriptors the generator keeps for itself: raise it (as root: ulimit -Hn %d; systemd: LimitNOFILE=%d)",
					nf.Hard, generatorReserve, need, need))
			}
			if errors.As(err, &hl) {
				return runtimeErr(fmt.Errorf("the generator %v (%d connections + %d for itself); or lower --connections to %d, or let --procs auto spread them over processes",
					err, cfg.Connections, generatorReserve, int(nf.Hard)-generatorReserve))
			}
			return runtimeErr(fmt.Errorf("raise the generator's soft limit to %d: %w", need, err))
		}
		nf.Soft = raised.Soft
	}

	outs, err := openOutputs(&cfg, env.temps)
	if err != nil {
		return err
	}
	defer outs.abort() // after Commit this only cleans up what failed

	return runLoad(ctx, &cfg, env, outs, nf, sysctls, stdout, stderr)
}

// sockDiagAnswers asks sock_diag for the listeners on one port: --probe
// accept needs it after the ramp, so a default must not find out then.
func sockDiagAnswers() error {
	d, err := limits.OpenSockDiag()
	if err != nil {
		return err
	}
	defer d.Close()
	_, err = d.Listeners(1)
	return err
}
