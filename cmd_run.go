package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

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
	CSV      string
	Timeline string
	JSON     string
	Interval time.Duration
	Quiet    bool

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
	"procs":            "auto or 1 (one generator process; several are not built yet)",
	"port-range":       "LOW-HIGH with 1024 <= LOW < HIGH <= 65535, such as 40000-40199; only with --netns",
	"somaxconn":        "an integer from 1 to 1048576; only with --netns",
})

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
	fs.StringVar(&cfg.Procs, "procs", "auto", "generator processes: auto or 1")
	fs.IntVar(&cfg.TargetPort, "target-port", 0, "port of the built-in target on 127.0.0.1 (0 = any free port)")
	cfg.behaviorFlags.register(fs)
	fs.StringVar(&cfg.CSV, "csv", "", "write one row per attempt to this CSV file")
	fs.StringVar(&cfg.Timeline, "timeline", "", "write one row per --interval to this CSV file")
	fs.StringVar(&cfg.JSON, "json", "", "write the summary as JSON to this file")
	fs.BoolVar(&cfg.NetNS, "netns", false, "run in a network namespace of its own (root): exact kernel counters, settable net sysctls")
	fs.StringVar(&cfg.PortRange, "port-range", "", "net.ipv4.ip_local_port_range in the --netns namespace, such as 40000-40199")
	fs.IntVar(&cfg.Somaxconn, "somaxconn", 0, "net.core.somaxconn in the --netns namespace")
	fs.BoolVar(&cfg.inNetNS, "netns-child", false, "internal: this is the namespaced child of --netns")
	_ = fs.MarkHidden("netns-child")
	fs.DurationVar(&cfg.Interval, "interval", 100*time.Millisecond, "sampling interval of the timeline and the target's reports")
	fs.BoolVarP(&cfg.Quiet, "quiet", "q", false, "no progress display")
	return fs
}

// flagError turns a pflag parse error into one line naming the accepted range.
func flagError(err error, ranges map[string]string) error {
	msg := err.Error()
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
	bad := func(name string) error { return usageErr("--%s: want %s", name, runRanges[name]) }
	switch {
	case c.Connections < 1 || c.Connections > maxConnections:
		return bad("connections")
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return bad("rate")
	case c.Concurrency < 1 || c.Concurrency > maxConcurrency:
		return bad("concurrency")
	case c.ConnectTimeout <= 0 || c.ConnectTimeout > maxTimeout:
		return bad("connect-timeout")
	case c.GreetingTimeout <= 0 || c.GreetingTimeout > maxTimeout:
		return bad("greeting-timeout")
	case c.Hold < 0 || c.Hold > 24*time.Hour:
		return bad("hold")
	case c.TargetNoFile < target.MinNoFile:
		return bad("target-nofile")
	case c.NoFile != 0 && c.NoFile < minGeneratorNoFile:
		return bad("nofile")
	case c.Procs != "auto" && c.Procs != "1":
		return bad("procs")
	case c.TargetPort < 0 || c.TargetPort > 65535:
		return bad("target-port")
	case c.Interval < 10*time.Millisecond || c.Interval > time.Minute:
		return bad("interval")
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
		return bad("somaxconn")
	}
	if !c.NetNS {
		for flag, set := range map[string]bool{"port-range": c.PortRange != "", "somaxconn": c.Somaxconn != 0} {
			if set {
				return usageErr("--%s: valid only with --netns (it would change the host's setting)", flag)
			}
		}
	}
	seen := map[string]string{}
	for _, o := range []struct{ flag, path string }{{"csv", c.CSV}, {"timeline", c.Timeline}, {"json", c.JSON}} {
		if o.path == "" {
			continue
		}
		if prev, ok := seen[o.path]; ok {
			return usageErr("--%s and --%s name the same file %s: want distinct paths", prev, o.flag, o.path)
		}
		seen[o.path] = o.flag
	}
	return nil
}

// outputs are the report files, created before the run and committed after.
type outputs struct {
	csv, timeline, json *report.Output
}

func openOutputs(c *runConfig) (*outputs, error) {
	o := &outputs{}
	for _, f := range []struct {
		flag, path string
		dst        **report.Output
	}{{"csv", c.CSV, &o.csv}, {"timeline", c.Timeline, &o.timeline}, {"json", c.JSON, &o.json}} {
		if f.path == "" {
			continue
		}
		out, err := report.CreateOutput(f.path)
		if err != nil {
			o.abort()
			return nil, usageErr("--%s: %v; want a path in a writable directory", f.flag, err)
		}
		*f.dst = out
	}
	return o, nil
}

func (o *outputs) all() []*report.Output {
	var all []*report.Output
	for _, out := range []*report.Output{o.csv, o.timeline, o.json} {
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
		return flagError(err, runRanges)
	}
	if fs.NArg() > 0 {
		return usageErr("run takes no arguments, got %q", fs.Args())
	}
	if err := cfg.Validate(); err != nil {
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

	// Pre-flight: read the limits (the inherited soft limit before any
	// Setrlimit), then make sure both processes fit under the hard limit.
	inh, inhFrom := limits.InheritedSoft(ctx)
	nf, err := limits.ReadNoFile()
	if err != nil {
		return runtimeErr(err)
	}
	nf.Inherited, nf.InheritedFrom = inh, inhFrom
	sysctls, _ := limits.ReadSysctls(env.procRoot) // unreadable values stay -1 and are shown so
	if cfg.TargetNoFile > nf.Hard {
		return usageErr("--target-nofile: %d is above the hard limit %d; want %d to %d (only root can raise the hard limit: ulimit -Hn)",
			cfg.TargetNoFile, nf.Hard, target.MinNoFile, nf.Hard)
	}
	if cfg.NoFile > nf.Hard {
		return usageErr("--nofile: %d is above the hard limit %d; want %s", cfg.NoFile, nf.Hard, runRanges["nofile"])
	}
	if cfg.NoFile == 0 {
		need := uint64(cfg.Connections) + generatorReserve
		raised, err := limits.EnsureSoft(need)
		if err != nil {
			var hl *limits.HardLimitError
			if errors.As(err, &hl) {
				return runtimeErr(fmt.Errorf("the generator %v (%d connections + %d for itself); or lower --connections to %d",
					err, cfg.Connections, generatorReserve, int(nf.Hard)-generatorReserve))
			}
			return runtimeErr(fmt.Errorf("raise the generator's soft limit to %d: %w", need, err))
		}
		nf.Soft = raised.Soft
	}

	outs, err := openOutputs(&cfg)
	if err != nil {
		return err
	}
	defer outs.abort() // after Commit this only cleans up what failed

	return runWithTarget(ctx, &cfg, env, outs, nf, sysctls, stdout, stderr)
}

func runWithTarget(ctx context.Context, cfg *runConfig, env runEnv, outs *outputs, nf limits.NoFile,
	sysctls limits.Sysctls, stdout, stderr io.Writer) error {
	began := time.Now()
	// The counters' baseline is taken before the target exists.
	kv := limits.OpenKernelView(env.procRoot)
	defer kv.Close()
	tp, err := target.Start(ctx, target.ProcessConfig{
		Exe: env.targetExe, Addr: fmt.Sprintf("127.0.0.1:%d", cfg.TargetPort),
		NoFile: cfg.TargetNoFile, StatsInterval: cfg.Interval,
		Behavior: cfg.behavior,
	})
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return cause
		}
		return runtimeErr(err)
	}
	defer tp.Stop(2 * time.Second)
	addr, err := netip.ParseAddrPort(tp.Ready().Addr)
	if err != nil {
		return runtimeErr(fmt.Errorf("target reported address %q: %w", tp.Ready().Addr, err))
	}
	gen, err := loadgen.New(loadgen.Config{
		Target: addr, Connections: cfg.Connections, Rate: cfg.Rate, Concurrency: cfg.Concurrency,
		ConnectTimeout: cfg.ConnectTimeout, GreetingTimeout: cfg.GreetingTimeout,
		ParseGreeting: target.ParseGreeting,
	})
	if err != nil {
		return runtimeErr(err)
	}

	// The run stops early on a signal (ctx) or if the target dies.
	runCtx, stopRun := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-tp.Exited():
			stopRun(tp.Died())
		case <-runCtx.Done():
		}
	})
	sampler := newSampler(cfg, outs, gen, tp, began, stderr)
	sampler.kv, sampler.port = kv, addr.Port()
	sampleCtx, stopSampling := context.WithCancel(context.Background())
	wg.Go(func() { sampler.loop(sampleCtx) })

	var runErr error
	if cfg.NoFile > 0 {
		// Lowered only now: starting the target and the samplers needed descriptors.
		lowered, err := limits.SetSoft(cfg.NoFile)
		if err != nil {
			runErr = fmt.Errorf("set the generator's soft limit to --nofile %d: %w", cfg.NoFile, err)
		}
		nf.Soft = lowered.Soft
	}
	if runErr == nil {
		runErr = gen.Open(runCtx)
	}
	if runErr == nil && cfg.Hold > 0 {
		t := time.NewTimer(cfg.Hold)
		select {
		case <-t.C:
		case <-runCtx.Done():
			runErr = context.Cause(runCtx)
		}
		t.Stop()
	}
	holdEnd := sampler.kernelSample() // the queue as it stands, before teardown empties it
	closeErr := gen.Close()
	stopRun(nil)
	tp.Stop(2 * time.Second)
	stopSampling()
	wg.Wait()
	sampler.finish()
	if runErr == nil {
		runErr = closeErr
	}
	if runErr == nil {
		runErr = context.Cause(runCtx)
		if errors.Is(runErr, context.Canceled) {
			runErr = nil // our own stopRun(nil)
		}
	}

	sum := report.Build(report.Input{
		Requested: cfg.Connections, Target: addr, Results: gen.Results(), GeneratorID: os.Getpid(),
		Limits: report.Limits{Generator: nf, Sysctls: sysctls}, TargetInfo: targetInfo(tp, cfg),
		Duration: time.Since(began), Interrupted: isSignal(runErr), Err: runErr,
		Kernel: sampler.kernelSummary(cfg, kv, holdEnd),
	})
	if err := writeReports(cfg, outs, sum, addr, gen.Results(), sampler); err != nil {
		return runtimeErr(err)
	}
	if err := report.WriteText(stdout, sum); err != nil {
		return runtimeErr(err)
	}
	switch {
	case runErr == nil:
		return nil
	case isSignal(runErr):
		return runErr
	default:
		return runtimeErr(runErr)
	}
}

func isSignal(err error) bool {
	var se *signalError
	return errors.As(err, &se)
}

func targetInfo(tp *target.Process, cfg *runConfig) *report.Target {
	ready, last := tp.Ready(), tp.Latest()
	t := &report.Target{PID: ready.PID, NoFileSoft: ready.NoFileSoft, NoFileHard: ready.NoFileHard,
		Accepted: last.Accepted, AcceptErrors: last.AcceptErrors, Shed: last.Shed}
	b := cfg.behavior
	t.OnEMFILE, t.Backlog = string(b.OnEMFILE), b.Backlog
	t.MaxConns, t.OnMaxConns, t.AcceptDelayS = b.MaxConns, string(b.OnMaxConns), b.AcceptDelay.Seconds()
	t.Capped = last.Capped
	if e := tp.FirstEMFILE(); e != nil {
		t.FirstEMFILE = &report.FirstEMFILE{Errno: e.Errno, Accepted: e.Accepted, FDsOpen: e.FDsOpen,
			SlotsUsed: e.SlotsUsed, OtherFDs: e.OtherFDs, AboveLimitFDs: e.AboveLimitFDs}
	}
	return t
}

func writeReports(cfg *runConfig, outs *outputs, sum report.Summary, addr netip.AddrPort,
	results []loadgen.Result, s *sampler) error {
	if outs.csv != nil {
		if err := report.WriteCSV(outs.csv, addr, results); err != nil {
			return fmt.Errorf("--csv %s: %w", cfg.CSV, err)
		}
	}
	if outs.timeline != nil {
		if err := s.timelineErr; err != nil {
			return fmt.Errorf("--timeline %s: %w", cfg.Timeline, err)
		}
	}
	if outs.json != nil {
		if err := report.WriteJSON(outs.json, sum); err != nil {
			return fmt.Errorf("--json %s: %w", cfg.JSON, err)
		}
	}
	for _, out := range outs.all() {
		if err := out.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// sampler reads both sides every --interval for the timeline and progress.
type sampler struct {
	gen         *loadgen.Generator
	tp          *target.Process
	began       time.Time
	interval    time.Duration
	timeline    *report.Timeline
	timelineErr error
	progress    *report.Progress

	kv          *limits.KernelView
	port        uint16
	mu          sync.Mutex // guards the two below: kernelSample runs in the loop and at the end of the hold
	queueMax    int64
	backlogSeen int64
}

func newSampler(cfg *runConfig, outs *outputs, gen *loadgen.Generator, tp *target.Process, began time.Time, stderr io.Writer) *sampler {
	s := &sampler{gen: gen, tp: tp, began: began, interval: cfg.Interval, queueMax: -1, backlogSeen: -1}
	if outs.timeline != nil {
		s.timeline, s.timelineErr = report.NewTimeline(outs.timeline)
	}
	if !cfg.Quiet {
		s.progress = report.NewProgress(stderr, cfg.Connections, isTerminal(stderr))
	}
	return s
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (s *sampler) sample() report.Sample {
	t := s.tp.Latest()
	return report.Sample{Elapsed: time.Since(s.began), Gen: s.gen.Snapshot(),
		TargetAccepted: t.Accepted, TargetFDs: t.FDsOpen, TargetAcceptErrors: t.AcceptErrors,
		Kernel: s.kernelSample()}
}

// kernelSample reads the listener and the counters, and keeps the longest queue.
func (s *sampler) kernelSample() limits.KernelSample {
	if s.kv == nil {
		return limits.KernelSample{}
	}
	k := s.kv.Sample(s.port)
	if l := k.Listener; l != nil {
		s.mu.Lock()
		s.queueMax = max(s.queueMax, int64(l.AcceptQueue))
		s.backlogSeen = int64(l.Backlog)
		s.mu.Unlock()
	}
	return k
}

func (s *sampler) kernelSummary(cfg *runConfig, kv *limits.KernelView, holdEnd limits.KernelSample) *report.Kernel {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := &report.Kernel{Namespace: "host", ListenBacklog: s.backlogSeen, AcceptQueueMax: s.queueMax, AcceptQueueEnd: -1,
		TCPExt: s.kv.Sample(s.port).TCPExt}
	if cfg.inNetNS {
		k.Namespace, k.Exact = "private", true
	}
	if holdEnd.Listener != nil {
		k.AcceptQueueEnd = int64(holdEnd.Listener.AcceptQueue)
	}
	if kv.Unavailable != nil {
		k.Unavailable = kv.Unavailable.Error()
	}
	return k
}

func (s *sampler) record(smp report.Sample) {
	if s.timeline != nil && s.timelineErr == nil {
		s.timelineErr = s.timeline.Write(smp)
	}
}

func (s *sampler) loop(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			smp := s.sample()
			s.record(smp)
			if s.progress != nil {
				s.progress.Update(smp)
			}
		}
	}
}

// finish records the last sample; call after loop has returned.
func (s *sampler) finish() {
	smp := s.sample()
	s.record(smp)
	if s.timeline != nil && s.timelineErr == nil {
		s.timelineErr = s.timeline.Flush()
	}
	if s.progress != nil {
		s.progress.Finish(smp)
	}
}
