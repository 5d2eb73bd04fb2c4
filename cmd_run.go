package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/connlimit/connlimit/engine"
	"github.com/connlimit/connlimit/internal/sockaddr"
	"github.com/connlimit/connlimit/limits"
	"github.com/connlimit/connlimit/loadgen"
	"github.com/connlimit/connlimit/report"
	"github.com/connlimit/connlimit/target"
)

// runConfig is the run command's flags, as given.
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
	CSV      string
	Timeline string
	JSON     string
	Plot     string
	JUnit    string
	Prom     string
	Push     string
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
	TLSServerName string
	RequireServed int
	ExpectLimit   string
	MaxConnectP99 time.Duration

	Forward         bool
	ForwardNoFile   uint64 // 0: the target's
	SkipMemoryCheck bool
	SourceIPs       string
	RampProcs       string
	TargetProcs     string

	NetNS     bool
	PortRange string
	Somaxconn int

	inNetNS bool // this process is the --netns child: the namespace is the run's own

	shardFlags
}

// runEnv is what tests may replace; zero values mean the real thing.
type runEnv struct {
	targetExe string // binary with the target subcommand; os.Executable() when ""
	procRoot  string
	temps     *report.Temps // the report's temporary files, for a second interrupt to remove; nil: untracked
}

// Accepted ranges, named in every error about the flag.
const (
	maxConnections = 10_000_000
	maxConcurrency = 1_000_000
	maxTimeout     = 10 * time.Minute
)

var runRanges = withShardRanges(withBehaviorRanges(map[string]string{
	"connections":      fmt.Sprintf("an integer from 1 to %d", maxConnections),
	"rate":             "connections per second, 0 (as fast as possible) or more",
	"concurrency":      fmt.Sprintf("an integer from 1 to %d", maxConcurrency),
	"connect-timeout":  "a duration above 0 and at most 10m, such as 2s",
	"greeting-timeout": "a duration above 0 and at most 10m, such as 1s",
	"hold":             "a duration from 0 to 24h, such as 1s",
	"target-nofile":    fmt.Sprintf("an integer from %d to the hard RLIMIT_NOFILE", target.MinNoFile),
	"target-port":      "a port from 0 (any free port) to 65535",
	"interval":         "a duration from 10ms to 1m, such as 100ms",
	"nofile":           fmt.Sprintf("0 (raise as needed) or an integer from %d to the hard RLIMIT_NOFILE", engine.MinGeneratorNoFile),
	"target-procs":     "auto (as many built-in target processes as the hard limit requires) or an integer from 1 to 1024",
	"procs":            "auto (as many generator processes as the hard limit requires) or an integer from 1 to 1024",
	"ramp-procs":       "auto, all or an integer from 1 to 1024",
	"port-range":       "LOW-HIGH with 1024 <= LOW < HIGH <= 65535, such as 40000-40199; only with --netns",
	"somaxconn":        "an integer from 1 to 1048576; only with --netns",
	"target":           engine.TargetRange,
	"target-pid":       "the PID of a running process (repeatable)",
	"probe":            "connect, accept, greeting, echo, http, postgres, mysql, redis or tls",
	"payload":          "bytes from 1 to 65536",
	"mss":              "bytes from 88 to 32767 (TCP_MAXSEG), or 0 to leave it",
	"source-ips":       "addresses and ranges of this machine, such as 127.0.0.2-127.0.0.40,127.0.1.5",
	"forward-nofile":   fmt.Sprintf("0 (the target's) or an integer from %d to the hard RLIMIT_NOFILE; only with --forward", target.MinNoFile),
	"http-path":        "a path starting with /, such as /healthz",
	"tls-server-name":  "a host name of at most 253 bytes, such as example.com; only with --probe tls",
	"require-served":   "an integer from 0 to --connections",
	"expect-limit":     strings.Join(report.LimitWords(), ", "),
	"max-connect-p99":  "a duration above 0, such as 50ms",
	"push":             "an http or https URL of a Pushgateway's base, such as http://127.0.0.1:9091 (connlimit adds /metrics/job/connlimit/...)",
}))

func withShardRanges(m map[string]string) map[string]string {
	for k, v := range shardRanges {
		m[k] = v
	}
	return m
}

// builtinProbes work against the built-in target too; externalProbes speak a
// server's own protocol and need --target.
var (
	builtinProbes  = []string{"connect", "accept", "greeting", "echo"}
	externalProbes = []string{"http", "postgres", "mysql", "redis", "tls"}
)

// validServerName accepts "" (none) or a DNS name, as SNI carries it.
func validServerName(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, c := range s {
		if !(c == '.' || c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return !strings.HasPrefix(s, ".") && !strings.Contains(s, "..")
}

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

// maxProcs bounds --procs.
const maxProcs = 1024

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
	fs.StringVar(&cfg.JUnit, "junit", "", "write the run as JUnit XML to this file: a testcase for the verdict and one per gate")
	fs.StringVar(&cfg.Prom, "prom", "", "write the run's figures in the Prometheus text format to this file (for node_exporter's textfile collector)")
	fs.StringVar(&cfg.Push, "push", "", "push the run's figures to this Pushgateway URL (job connlimit, grouped by instance and shard)")
	fs.StringVar(&cfg.SourceIPs, "source-ips", "", "bind client sockets to these source addresses in turn (IP_BIND_ADDRESS_NO_PORT): each gets its own ephemeral ports")
	fs.BoolVar(&cfg.SkipMemoryCheck, "skip-memory-check", false, "run even if the connections look too many for MemAvailable or fs.file-max")
	fs.BoolVar(&cfg.Forward, "forward", false, "put a TCP port forwarder (connlimit forward) between the generator and the built-in target")
	fs.Uint64Var(&cfg.ForwardNoFile, "forward-nofile", 0, "the forwarder's soft RLIMIT_NOFILE (0 = the target's)")
	fs.StringVar(&cfg.Target, "target", "", "HOST:PORT of a running server to test instead of the built-in target")
	fs.IntSliceVar(&cfg.TargetPIDs, "target-pid", nil, "the process(es) behind --target, when they cannot be found by socket inode")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "let --target name an address that is not loopback (a connection flood at someone's server is an attack: be sure)")
	fs.StringVar(&cfg.Probe, "probe", "", "how a connection counts as served: connect, accept (the kernel says the server accepted it), greeting (built-in default; accept once the run takes several processes), echo, http, or a server's own first exchange: postgres, mysql, redis, tls (a completed handshake) (--target default: connect)")
	fs.IntVar(&cfg.Payload, "payload", 16, "bytes the echo probe sends and wants back (given alone, it selects --probe echo)")
	fs.IntVar(&cfg.MSS, "mss", 0, "set TCP_MAXSEG on every client socket before connect, to see a stream leave in segments")
	fs.StringVar(&cfg.HTTPPath, "http-path", "/", "path the http probe asks for")
	fs.StringVar(&cfg.TLSServerName, "tls-server-name", "", "name the tls probe sends by SNI (default: --target's host, none for an address)")
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
	fs.StringVar(&cfg.Shard, "shard", "", "make this run shard I of S of a larger one (I/S): its share of --connections and --rate, merged by connlimit merge")
	fs.IntVar(&cfg.Shards, "shards", 0, "as --shard, with the index from JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID")
	fs.StringVar(&cfg.StartAt, "start-at", "", "start the ramp at this RFC 3339 instant, tables grown before (a late shard starts at once and says by how much)")
	fs.StringVar(&cfg.ShardOut, "shard-out", "", "write the shard's summary as one line of JSON to FILE; - prints it as the last line of stdout (for kubectl logs)")
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

// engineConfig checks every flag against its accepted range and the
// combination given, and builds the run's engine.Config; changed says which
// flags were given (a flag left alone lets the engine choose). Checks that
// need the process's limits are the engine's.
func (c *runConfig) engineConfig(changed func(string) bool) (engine.Config, error) {
	var ec engine.Config
	bad := func(name string, v any) error { return usageErr("--%s %v: want %s", name, v, runRanges[name]) }
	switch {
	case c.Connections < 1 || c.Connections > maxConnections:
		return ec, bad("connections", c.Connections)
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return ec, bad("rate", c.Rate)
	case c.Concurrency < 1 || c.Concurrency > maxConcurrency:
		return ec, bad("concurrency", c.Concurrency)
	case c.ConnectTimeout <= 0 || c.ConnectTimeout > maxTimeout:
		return ec, bad("connect-timeout", c.ConnectTimeout)
	case c.GreetingTimeout <= 0 || c.GreetingTimeout > maxTimeout:
		return ec, bad("greeting-timeout", c.GreetingTimeout)
	case c.Hold < 0 || c.Hold > 24*time.Hour:
		return ec, bad("hold", c.Hold)
	case c.TargetNoFile < target.MinNoFile:
		return ec, bad("target-nofile", c.TargetNoFile)
	case c.NoFile != 0 && c.NoFile < engine.MinGeneratorNoFile:
		return ec, bad("nofile", c.NoFile)
	case c.Procs != "auto" && !validProcs(c.Procs):
		return ec, bad("procs", c.Procs)
	case c.TargetProcs != "auto" && !validProcs(c.TargetProcs):
		return ec, bad("target-procs", c.TargetProcs)
	case c.RampProcs != "auto" && c.RampProcs != "all" && !validProcs(c.RampProcs):
		return ec, bad("ramp-procs", c.RampProcs)
	case c.TargetPort < 0 || c.TargetPort > 65535:
		return ec, bad("target-port", c.TargetPort)
	case c.Interval < 10*time.Millisecond || c.Interval > time.Minute:
		return ec, bad("interval", c.Interval)
	}
	behavior, err := c.behaviorFlags.behavior()
	if err != nil {
		return ec, err
	}
	if c.PortRange != "" {
		if _, err = parsePortRange(c.PortRange); err != nil {
			return ec, usageErr("--port-range: %v; want %s", err, runRanges["port-range"])
		}
	}
	if c.Somaxconn < 0 || c.Somaxconn > maxBacklog {
		return ec, bad("somaxconn", c.Somaxconn)
	}
	if c.Probe != "" && !slices.Contains(builtinProbes, c.Probe) && !slices.Contains(externalProbes, c.Probe) {
		return ec, usageErr("--probe: unknown probe %q; want %s", c.Probe, runRanges["probe"])
	}
	if c.Target == "" && slices.Contains(externalProbes, c.Probe) {
		return ec, usageErr("--probe %s: needs --target (the built-in target speaks its own line protocol); want connect, accept, greeting or echo", c.Probe)
	}
	switch {
	case c.Payload < 1 || c.Payload > 65536:
		return ec, bad("payload", c.Payload)
	case c.MSS != 0 && (c.MSS < 88 || c.MSS > 32767):
		return ec, bad("mss", c.MSS)
	case c.ForwardNoFile != 0 && c.ForwardNoFile < target.MinNoFile:
		return ec, bad("forward-nofile", c.ForwardNoFile)
	case c.ForwardNoFile != 0 && !c.Forward:
		return ec, usageErr("--forward-nofile: valid only with --forward")
	case !strings.HasPrefix(c.HTTPPath, "/") || strings.ContainsAny(c.HTTPPath, " \r\n"):
		return ec, bad("http-path", c.HTTPPath)
	case !validServerName(c.TLSServerName):
		return ec, bad("tls-server-name", c.TLSServerName)
	case c.RequireServed < 0 || c.RequireServed > c.Connections:
		return ec, usageErr("--require-served %d: want an integer from 0 to --connections (%d)", c.RequireServed, c.Connections)
	case c.MaxConnectP99 < 0:
		return ec, bad("max-connect-p99", c.MaxConnectP99)
	}
	var sources []netip.Addr
	if c.SourceIPs != "" {
		if sources, err = sockaddr.ParseList(c.SourceIPs); err != nil {
			return ec, usageErr("--source-ips: %v; want %s", err, runRanges["source-ips"])
		}
	}
	for _, pid := range c.TargetPIDs {
		if pid < 1 {
			return ec, usageErr("--target-pid: %d; want %s", pid, runRanges["target-pid"])
		}
	}
	if c.ExpectLimit != "" && !slices.Contains(report.LimitWords(), c.ExpectLimit) {
		return ec, usageErr("--expect-limit: unknown verdict %q; want one of %s", c.ExpectLimit, runRanges["expect-limit"])
	}
	if c.Target != "" {
		_, port, err := net.SplitHostPort(c.Target)
		if err != nil {
			return ec, usageErr("--target: %q: %v; want %s", c.Target, err, runRanges["target"])
		}
		if p, err := strconv.Atoi(port); err == nil && (p < 1 || p > 65535) {
			return ec, usageErr("--target: %q: port %d is no port a server listens on; want %s", c.Target, p, runRanges["target"])
		}
	}
	if !c.NetNS {
		for flag, set := range map[string]bool{"port-range": c.PortRange != "", "somaxconn": c.Somaxconn != 0} {
			if set {
				return ec, usageErr("--%s: valid only with --netns (it would change the host's setting)", flag)
			}
		}
	}
	if c.Plot != "" {
		if _, err := report.PlotFormat(c.Plot); err != nil {
			return ec, usageErr("--plot: %v", err)
		}
	}
	if c.Push != "" && !validPushURL(c.Push) {
		return ec, usageErr("--push %q: want %s", report.RedactURL(c.Push), runRanges["push"])
	}
	probe := c.Probe
	if changed("payload") && probe == "" {
		probe = "echo" // a payload is sent to be echoed
	}
	if err := c.checkCombinations(changed, probe); err != nil {
		return ec, err
	}
	if err := sockaddr.CheckLocal(sources); err != nil {
		return ec, usageErr("--source-ips: %v; want %s", err, runRanges["source-ips"])
	}

	// Flags left alone are zero: the engine's plan chooses for them.
	ifSet := func(name string, d time.Duration) time.Duration {
		if changed(name) {
			return d
		}
		return 0
	}
	ec = engine.Config{
		Connections: c.Connections, Rate: c.Rate, Hold: c.Hold, NoFile: c.NoFile, TargetPort: c.TargetPort, Behavior: behavior,
		ConnectTimeout: ifSet("connect-timeout", c.ConnectTimeout), GreetingTimeout: ifSet("greeting-timeout", c.GreetingTimeout),
		CSV: c.CSV, Timeline: c.Timeline, JSON: c.JSON, Plot: c.Plot, Interval: c.Interval, Quiet: c.Quiet,
		JUnit: c.JUnit, Prom: c.Prom, Push: c.Push, StepSummary: os.Getenv("GITHUB_STEP_SUMMARY"),
		Target: c.Target, TargetPIDs: c.TargetPIDs, AllowRemote: c.AllowRemote,
		Probe: probe, Payload: c.Payload, MSS: c.MSS, HTTPPath: c.HTTPPath, TLSServerName: c.TLSServerName,
		Gates:   report.Gates{RequireServed: c.RequireServed, HasRequireServed: changed("require-served"), ExpectLimit: c.ExpectLimit, MaxConnectP99: c.MaxConnectP99},
		Forward: c.Forward, ForwardNoFile: c.ForwardNoFile, SkipMemoryCheck: c.SkipMemoryCheck, Sources: sources,
		PrivateNetNS: c.inNetNS,
	}
	if changed("concurrency") {
		ec.Concurrency = c.Concurrency
	}
	if changed("target-nofile") {
		ec.TargetNoFile = c.TargetNoFile
	}
	if err := c.shardFlags.shard(changed, &ec, time.Now()); err != nil {
		return ec, err
	}
	ec.Procs, _ = strconv.Atoi(c.Procs) // "auto" is 0
	ec.TargetProcs, _ = strconv.Atoi(c.TargetProcs)
	switch c.RampProcs {
	case "all":
		ec.RampProcs = engine.RampAll
	default:
		ec.RampProcs, _ = strconv.Atoi(c.RampProcs)
	}
	return ec, nil
}

// maxRunTime bounds how long the ramp of a --rate may take.
const maxRunTime = 24 * time.Hour

// checkCombinations refuses flags that would do nothing in the combination
// given: a user who passed them expects an effect they would not get.
// probe is the one asked for, "" for the default.
func (c *runConfig) checkCombinations(changed func(string) bool, probe string) error {
	shown := probe
	if shown == "" {
		shown = "left to its default"
	}
	switch {
	case changed("payload") && probe != "echo":
		return usageErr("--payload %d: only --probe echo sends a payload, and --probe is %s: drop --payload or use --probe echo", c.Payload, shown)
	case changed("http-path") && probe != "http":
		return usageErr("--http-path %q: only --probe http asks for a path, and --probe is %s: drop --http-path or use --probe http", c.HTTPPath, shown)
	case changed("tls-server-name") && probe != "tls":
		return usageErr("--tls-server-name %q: only --probe tls sends a server name, and --probe is %s: drop --tls-server-name or use --probe tls", c.TLSServerName, shown)
	case changed("target-pid") && c.Target == "":
		return usageErr("--target-pid %v: names the process behind --target; the built-in target is known without it", c.TargetPIDs)
	case c.Rate > 0 && float64(c.Connections)/c.Rate > maxRunTime.Seconds():
		return usageErr("--rate %g: %d connections would take %s to start, over a day; want at least %.4g per second",
			c.Rate, c.Connections, (time.Duration(float64(c.Connections)/c.Rate) * time.Second).String(), float64(c.Connections)/maxRunTime.Seconds())
	}
	return nil
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
	if err := noEmptyValues(fs, "tls-server-name", "namespace"); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("run takes no arguments, got %q", fs.Args())
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
	ec, err := cfg.engineConfig(fs.Changed)
	if err != nil {
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
		ports, _ := parsePortRange(cfg.PortRange) // checked; zero when not given
		if err := limits.SetupNetNS(env.procRoot, ports, cfg.Somaxconn); err != nil {
			return runtimeErr(fmt.Errorf("--netns: %w", err))
		}
		if ec.TargetPort == 0 {
			// Below any --port-range, so no client port is lost to the listener.
			ec.TargetPort = netnsTargetPort
		}
	}
	return engine.Run(ctx, ec, engine.Env{Exe: env.targetExe, ProcRoot: env.procRoot, Temps: env.temps, Stdout: stdout, Stderr: stderr})
}

// validPushURL accepts an http or https URL with a host: the Pushgateway's
// base, as a path prefix behind a proxy may be, but not a push URL already
// (connlimit adds /metrics/job/connlimit/..., which would be doubled).
func validPushURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		!strings.Contains(u.Path+"/", "/metrics/job/") && u.RawQuery == "" && u.Fragment == ""
}
