package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/connlimit/connlimit/limits"
	"github.com/connlimit/connlimit/loadgen"
	"github.com/connlimit/connlimit/report"
	"github.com/connlimit/connlimit/target"
	"github.com/connlimit/connlimit/worker"
)

// load is the generator as the run drives it: one process (loadgen) or
// several (worker.Pool).
type load interface {
	Open(ctx context.Context) error
	Hold(ctx context.Context, d time.Duration) error
	Close() error
	Snapshot() loadgen.Snapshot
	Attempts() loadgen.Attempts
	MarkQueued(i int) bool
	Epoch() time.Time
}

// runLoad runs one load against the built-in target or --target, then
// writes every report.
func runLoad(ctx context.Context, cfg *Config, plan Plan, env Env, outs *outputs, nf limits.NoFile,
	sysctls limits.Sysctls) error {
	stdout, stderr := env.Stdout, env.Stderr
	began := time.Now()
	// The counters' baseline is taken before the target exists.
	kv := limits.OpenKernelView(env.ProcRoot)
	defer kv.Close()
	// A packet filter's counters, where this user may list them: the rules
	// that moved during the run are named in the verdict.
	nftBase, nftErr := limits.NftRules(ctx)
	var side *targetSide
	var err error
	if cfg.Target != "" {
		side, err = resolveExternal(ctx, cfg, kv)
	} else {
		side, err = startBuiltin(ctx, cfg, env)
	}
	if err != nil {
		if stoppedBy(ctx, err) {
			// Interrupted while starting the target: still a report, with no attempt in it.
			sum := report.Build(report.Input{Requested: cfg.Connections, GeneratorID: os.Getpid(),
				Limits: report.Limits{Generator: nf, Sysctls: sysctls}, Probe: cfg.Probe,
				Duration: time.Since(began), Interrupted: true, Err: err, Gates: cfg.Gates})
			if cfg.Shard != nil {
				now := time.Now()
				sum.Shard = shardInfo(cfg, &sum, began, now, now, loadgen.Attempts{}, 0)
			}
			if werr := errors.Join(report.WriteText(stdout, sum), writeReports(cfg, outs, sum, nil, loadgen.Attempts{}, nil), shardLine(cfg, stdout, sum)); werr != nil {
				return werr
			}
		}
		return err
	}
	defer side.close()
	side.procs = watchProcesses(env.ProcRoot, kv, side.addr, cfg.TargetPIDs)
	kernTasks := limits.ReadTaskLimits(ctx, env.ProcRoot, firstPID(side.procs))
	addr, tp := side.addr, side.tp
	if len(cfg.Sources) > 0 && cfg.Sources[0].Is4() != addr.Addr().Unmap().Is4() {
		return usageErr("--source-ips: %s and the target %s are of different families", cfg.Sources[0], addr.Addr())
	}
	probe := worker.ProbeSpec{Kind: cfg.Probe, Payload: cfg.Payload, Builtin: tp != nil, Host: side.host,
		HTTPPath: cfg.HTTPPath, ServerName: cfg.TLSServerName}
	var gen load
	if cfg.Procs > 1 {
		ramp := cfg.RampProcs
		if ramp == 0 && cfg.Shard != nil && !cfg.Shard.StartAt.IsZero() {
			ramp = cfg.Procs // every worker waits for --start-at, then all are released
		}
		pool, err := worker.Start(worker.Spec{Exe: env.Exe, Targets: side.addrs, Probe: probe,
			Connections: cfg.Connections, Rate: cfg.Rate, Concurrency: cfg.Concurrency, PerWorkerConcurrency: plan.PerWorkerConcurrency,
			ConnectTimeout: cfg.ConnectTimeout, GreetingTimeout: cfg.GreetingTimeout, MSS: cfg.MSS,
			Sources: cfg.Sources, LocalAddrs: cfg.CSV != "" || cfg.Probe == "accept" || cfg.Probe == "connect", QuietClose: cfg.Behavior.QuietClose, Ramp: ramp,
			Reserve: GeneratorReserve}, cfg.Procs)
		if err != nil {
			return err
		}
		defer pool.Close() // a no-op after the Close below
		gen = pool
	} else {
		g, err := loadgen.New(loadgen.Config{
			Targets: side.addrs, Connections: cfg.Connections, Rate: cfg.Rate, Concurrency: cfg.Concurrency,
			ConnectTimeout: cfg.ConnectTimeout, GreetingTimeout: cfg.GreetingTimeout,
			Probe: worker.NewProbe(probe), MSS: cfg.MSS, Segments: cfg.Probe == "echo", Sources: cfg.Sources,
			LocalAddrs: cfg.CSV != "" || cfg.Probe == "accept" || cfg.Probe == "connect", QuietClose: cfg.Behavior.QuietClose, Settle: settleQueued(cfg, kv, side),
		})
		if err != nil {
			return err
		}
		gen = g
	}

	// The run stops early on a signal (ctx) or if the target dies.
	runCtx, stopRun := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	for _, child := range append(slices.Clone(side.tps), side.fp) {
		if child == nil {
			continue
		}
		wg.Go(func() {
			select {
			case <-child.Exited():
				stopRun(child.Died())
			case <-runCtx.Done():
			}
		})
	}
	if pool, ok := gen.(*worker.Pool); ok {
		wg.Go(func() { pool.Watch(runCtx, stopRun) })
	}
	sampler := newSampler(cfg, outs, gen, side, began, stderr)
	sampler.fp = side.fp
	sampler.kv = kv
	for _, a := range side.addrs {
		sampler.ports = append(sampler.ports, a.Port())
	}
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
	var late time.Duration
	if runErr == nil && cfg.Shard != nil && !cfg.Shard.StartAt.IsZero() {
		late, runErr = startAt(runCtx, gen, cfg.Shard.StartAt)
	}
	if runErr == nil {
		runErr = gen.Open(runCtx)
		// The hold may last hours: a held connection should cost only what
		// it keeps, not the ramp's garbage (workers do the same).
		debug.FreeOSMemory()
	}
	var verdict *acceptVerdict
	if runErr == nil && cfg.Probe == "accept" {
		var v acceptVerdict
		v, runErr = unaccepted(runCtx, kv, sampler.ports, cfg.GreetingTimeout)
		verdict = &v
	}
	if runErr == nil {
		sampler.holdEnd.Store(time.Now().Add(cfg.Hold).UnixNano())
		runErr = gen.Hold(runCtx, cfg.Hold) // even 0: it reads the resets that already came
		sampler.holdEnd.Store(0)
	}
	holdEnded := time.Now()
	// The queue and the processes as they stand, before teardown empties
	// them: a timeline row too, as a short ramp may end between two ticks.
	holdEnd := sampler.tick().Kernel
	// What --probe connect calls served, the server may never have taken:
	// the ones the kernel still queues are named in the summary.
	var stillQueued map[limits.ServerConn]bool
	if cfg.Probe == "connect" && runErr == nil && holdEnd.Listener != nil && holdEnd.Listener.AcceptQueue > 0 {
		stillQueued, _ = kv.Queued(sampler.ports)
	}
	var rulesMoved []limits.FilterRule
	if nftErr == nil {
		if now, err := limits.NftRules(context.WithoutCancel(ctx)); err == nil {
			rulesMoved = limits.Moved(nftBase, now)
		}
	}
	sampler.freezeListeners() // teardown closes them: that is no evidence
	procsEnd := sampler.procSamples()
	if cfg.Target != "" {
		splitSockets(kv, env.ProcRoot, side.procs, addr.Port())
		readTasks(env.ProcRoot, side.procs)
	}
	kernTasks.Count(env.ProcRoot) // a server that cannot fork holds its tasks until teardown
	for _, p := range side.procs {
		p.stop()
	}

	closeErr := gen.Close()
	if verdict != nil && runErr == nil {
		for _, i := range servedNotAccepted(gen.Attempts().Results, side.addrs, *verdict) {
			gen.MarkQueued(i)
		}
	}
	var servedUnaccepted int64
	if len(stillQueued) > 0 {
		servedUnaccepted = int64(len(servedNotAccepted(gen.Attempts().Results, side.addrs, acceptVerdict{queued: stillQueued})))
	}
	stopRun(nil)
	side.stop()
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
	if cause := context.Cause(ctx); runErr == nil && cause != nil {
		runErr = cause // the caller stopped the run during teardown: still an interrupted run
	}

	sum := report.Build(report.Input{
		Requested: cfg.Connections, Target: addr, Attempts: gen.Attempts(), GeneratorID: os.Getpid(), SourceAddrs: len(cfg.Sources), RampProcs: cfg.RampProcs,
		Limits: report.Limits{Generator: nf, Sysctls: sysctls}, TargetInfo: targetInfo(firstOut(side.tps), cfg), Targets: targetInfos(side.tps, cfg),
		Forwarder: targetInfo(side.fp, cfg), ForwarderFirst: forwarderFirst(side), Generators: generatorProcs(gen),
		Processes: sampler.processes(procsEnd), Probe: cfg.Probe,
		Duration: time.Since(began), Interrupted: stoppedBy(ctx, runErr), Err: runErr,
		Kernel: sampler.kernelSummary(cfg, kv, holdEnd, env.ProcRoot, rulesMoved, kernTasks), Gates: cfg.Gates,
		Payload: cfg.Payload, MSSAsked: cfg.MSS, Died: deathOf(runErr),
	})
	if sum.Kernel != nil {
		sum.Kernel.ServedUnaccepted = servedUnaccepted
	}
	if cfg.Shard != nil {
		sum.Shard = shardInfo(cfg, &sum, began, gen.Epoch(), holdEnded, gen.Attempts(), late)
	}
	// The summary first: whatever happens to the files, what was measured is on stdout.
	textErr := report.WriteText(stdout, sum)
	if err := errors.Join(textErr, writeReports(cfg, outs, sum, side.addrs, gen.Attempts(), sampler), shardLine(cfg, stdout, sum)); err != nil {
		return err
	}
	if cause := context.Cause(ctx); runErr == nil && cause != nil {
		// Stopped while the files were written: they are complete, the run was still interrupted.
		return cause
	}
	switch {
	case runErr == nil && report.Failed(sum.Gates):
		return &GateError{sum.Gates}
	default:
		return runErr
	}
}

// deathOf is the report's record of the run's process whose death stopped
// it (err is the run's error), or nil.
func deathOf(err error) *report.Death {
	var te *target.ExitError
	if errors.As(err, &te) {
		d := &report.Death{Role: te.Role, PID: te.PID, Signal: te.Signal, ExitStatus: te.Status, After: te.Accepted}
		if d.Signal == "" {
			d.Log = te.LastLine()
		}
		return d
	}
	var wd *worker.DiedError
	if errors.As(err, &wd) {
		return &wd.Death
	}
	return nil
}

// acceptVerdict is what --probe accept learned from the kernel: either the
// connections still queued (all others were accepted), or, once a listener
// has closed, the ones accepted (all others were not).
type acceptVerdict struct {
	queued, accepted map[limits.ServerConn]bool
}

func (v acceptVerdict) notAccepted(c limits.ServerConn) bool {
	if v.accepted != nil {
		return !v.accepted[c]
	}
	return v.queued[c]
}

// servedNotAccepted lists the served attempts v says the server never took.
func servedNotAccepted(res []loadgen.Result, addrs []netip.AddrPort, v acceptVerdict) []int {
	var out []int
	for i := range res {
		if r := &res[i]; r.Outcome == loadgen.Served && v.notAccepted(limits.ServerConn{Client: r.Local(), Port: addrs[r.Dst].Port()}) {
			out = append(out, i)
		}
	}
	return out
}

// unaccepted is --probe accept's verdict: once the ramp is over it waits for
// the listeners' accept queues to settle (empty, unchanged for 200 ms, or
// the reply timeout), then asks the kernel which connections are still in
// them. A listener that closed reset its queue, but a client whose handshake
// it was finishing may not have heard: then only the server's accepted
// connections count.
func unaccepted(ctx context.Context, kv *limits.KernelView, ports []uint16, timeout time.Duration) (acceptVerdict, error) {
	if _, err := kv.Listeners(ports[0]); err != nil {
		return acceptVerdict{}, fmt.Errorf("--probe accept: cannot ask the kernel: %w; use --probe connect", err)
	}
	deadline := time.Now().Add(timeout)
	last, since := -1, time.Now()
	for {
		s := kv.Sample(ports...)
		var err error
		var v acceptVerdict
		switch {
		case s.Listeners < len(ports):
			v.accepted, err = kv.Accepted(ports)
			return v, err
		case s.Listener.AcceptQueue == 0:
			return v, nil
		}
		q := int(s.Listener.AcceptQueue)
		now := time.Now()
		if q != last {
			last, since = q, now
		}
		if now.Sub(since) >= 200*time.Millisecond || now.After(deadline) {
			v.queued, err = kv.Queued(ports)
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, context.Cause(ctx)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stoppedBy says whether err is ctx's own cause: the caller stopped the run
// (a signal, in the command line).
func stoppedBy(ctx context.Context, err error) bool {
	cause := context.Cause(ctx)
	return cause != nil && err != nil && errors.Is(err, cause)
}

// forwarderFirst says whether the forwarder met EMFILE before the target did.
func forwarderFirst(side *targetSide) bool {
	if side.fp == nil || side.fp.FirstEMFILE() == nil {
		return false
	}
	return side.tp.FirstEMFILE() == nil || side.fp.FirstEMFILEAt().Before(side.tp.FirstEMFILEAt())
}

// generatorProcs is the per-process breakdown of a multi-process generator.
func generatorProcs(gen load) []report.GeneratorProc {
	if p, ok := gen.(*worker.Pool); ok {
		return p.Procs()
	}
	return nil
}

// firstOut is the target process that met EMFILE first, else the first one.
func firstOut(tps []*target.Process) *target.Process {
	var first *target.Process
	for _, tp := range tps {
		if tp.FirstEMFILE() != nil && (first == nil || tp.FirstEMFILEAt().Before(first.FirstEMFILEAt())) {
			first = tp
		}
	}
	if first == nil && len(tps) > 0 {
		first = tps[0]
	}
	return first
}

// targetInfos is every target process, when there are several.
func targetInfos(tps []*target.Process, cfg *Config) []report.Target {
	if len(tps) < 2 {
		return nil
	}
	out := make([]report.Target, len(tps))
	for i, tp := range tps {
		out[i] = *targetInfo(tp, cfg)
	}
	return out
}

func targetInfo(tp *target.Process, cfg *Config) *report.Target {
	if tp == nil {
		return nil
	}
	ready, last := tp.Ready(), tp.Latest()
	t := &report.Target{PID: ready.PID, NoFileSoft: ready.NoFileSoft, NoFileHard: ready.NoFileHard,
		Accepted: last.Accepted, AcceptErrors: last.AcceptErrors, Shed: last.Shed}
	b := cfg.Behavior
	t.OnEMFILE, t.Backlog = string(b.OnEMFILE), b.Backlog
	t.MaxConns, t.OnMaxConns, t.AcceptDelayS = b.MaxConns, string(b.OnMaxConns), b.AcceptDelay.Seconds()
	t.Capped, t.Forwarded, t.DialErrors = last.Capped, last.Forwarded, last.DialErrors
	if e := tp.FirstEMFILE(); e != nil {
		t.FirstEMFILE = &report.FirstEMFILE{Errno: e.Errno, Phase: e.Phase, Accepted: e.Accepted, Forwarded: e.Forwarded, FDsOpen: e.FDsOpen,
			SlotsUsed: e.SlotsUsed, OtherFDs: e.OtherFDs, AboveLimitFDs: e.AboveLimitFDs}
	}
	return t
}

// writeReports writes and commits every report file it can: one that
// fails (a full disk, a FIFO whose reader went away) loses no other. The
// error names each that failed, its path and errno. s is nil when the run
// ended before sampling started (the timeline then has its header only).
func writeReports(cfg *Config, outs *outputs, sum report.Summary, addrs []netip.AddrPort, attempts loadgen.Attempts, s *sampler) error {
	var failed []string
	write := func(flag string, out *report.Output, fill func() error) {
		if out == nil {
			return
		}
		err := fill()
		if err != nil {
			out.Abort()
		} else {
			err = out.Commit()
		}
		if err != nil {
			msg := fmt.Sprintf("--%s %s: not written: %v", flag, out.Path(), err)
			var errno syscall.Errno
			if errors.As(err, &errno) {
				msg += " (" + report.ErrnoName(errno) + ")"
			}
			failed = append(failed, msg)
		}
	}
	write("csv", outs.csv, func() error { return report.WriteCSV(outs.csv, addrs, attempts) })
	write("timeline", outs.timeline, func() error {
		if s != nil {
			return s.timelineErr
		}
		tl, err := report.NewTimeline(outs.timeline)
		if err != nil {
			return err
		}
		return tl.Flush()
	})
	write("plot", outs.plot, func() error {
		var pts []report.Point
		if s != nil {
			pts = s.points.All
		}
		if len(pts) == 0 {
			pts = []report.Point{{}} // stopped before the first sample: an empty chart with its title
		}
		format, _ := report.PlotFormat(cfg.Plot) // validated with the flags
		return report.WritePlot(outs.plot, format, pts, report.ChartOf(sum))
	})
	write("json", outs.json, func() error { return report.WriteJSON(outs.json, sum) })
	write("shard-out", outs.shard, func() error { return report.WriteJSONLine(outs.shard, sum) })
	now := time.Now()
	host, _ := os.Hostname()
	write("junit", outs.junit, func() error { return report.WriteJUnit(outs.junit, sum, host, now) })
	write("prom", outs.prom, func() error { return report.WriteProm(outs.prom, report.NewPromRegistry(&sum, now)) })
	failed = append(failed, report.Publish(report.PublishConfig{Push: cfg.Push, StepSummary: cfg.StepSummary, Host: host}, &sum, now)...)
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "\nconnlimit: "))
	}
	return nil
}

// sampler reads both sides every --interval for the timeline and progress.
type sampler struct {
	gen         load
	tp          *target.Process   // nil for --target
	tps         []*target.Process // every built-in target process
	fp          *target.Process   // the forwarder, or nil
	procs       []*procWatch
	began       time.Time
	interval    time.Duration
	recMu       sync.Mutex // one row at a time, in time order: the loop and the end of the hold both record
	timeline    *report.Timeline
	timelineErr error
	progress    *report.Progress
	points      report.Points // for --plot
	keepPoints  bool
	holdEnd     atomic.Int64 // when the hold ends, in Unix nanoseconds; 0 outside it

	kv          *limits.KernelView
	ports       []uint16   // the listeners the kernel view follows
	mu          sync.Mutex // guards the ones below: kernelSample runs in the loop and at the end of the hold
	queueMax    int64
	backlogSeen int64
	seenAll     bool // every listener was seen once
	gone        bool // and later one was missing
	frozen      bool // the hold is over: listeners are no longer followed
	ctCountMax  int64
	ct          *limits.ConntrackSample // the last reading
}

func newSampler(cfg *Config, outs *outputs, gen load, side *targetSide, began time.Time, stderr io.Writer) *sampler {
	s := &sampler{gen: gen, tp: side.tp, tps: side.tps, procs: side.procs, began: began, interval: cfg.Interval, queueMax: -1, backlogSeen: -1}
	if outs.timeline != nil {
		s.timeline, s.timelineErr = report.NewTimeline(outs.timeline)
	}
	s.keepPoints = outs.plot != nil
	if !cfg.Quiet {
		s.progress = report.NewProgress(stderr, cfg.Connections, terminalCols(stderr))
	}
	return s
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// terminalCols is the width of the terminal w is, 0 when it is none (or
// 80 when a terminal cannot say).
func terminalCols(w io.Writer) int {
	if !isTerminal(w) {
		return 0
	}
	if cols, _, err := term.GetSize(int(w.(*os.File).Fd())); err == nil && cols > 0 {
		return cols
	}
	return 80
}

func (s *sampler) sample() report.Sample {
	smp := report.Sample{Elapsed: time.Since(s.began), Gen: s.gen.Snapshot(), Kernel: s.kernelSample()}
	if end := s.holdEnd.Load(); end != 0 {
		smp.HoldLeft = max(0, time.Until(time.Unix(0, end)))
	}
	if s.fp != nil {
		f := s.fp.Latest()
		smp.ForwarderFDs, smp.ForwarderNoFile, smp.ForwarderErrors = f.FDsOpen, s.fp.Ready().NoFileSoft, f.AcceptErrors+f.DialErrors
	}
	ps := s.procSamples()
	if s.tp != nil {
		for _, tp := range s.tps {
			t := tp.Latest()
			smp.TargetAccepted += t.Accepted
			smp.TargetFDs += t.FDsOpen
			smp.TargetAcceptErrors += t.AcceptErrors
			smp.TargetNoFile += tp.Ready().NoFileSoft // their combined room
		}
	} else {
		// The process nearest its limit stands for the target (an nginx worker, not its master).
		best := -1.0
		for _, p := range ps {
			if p.Soft == 0 {
				continue
			}
			if r := float64(p.SlotsUsed) / float64(p.Soft); r > best {
				best, smp.TargetFDs, smp.TargetNoFile = r, p.FDs, p.Soft
			}
		}
	}
	return smp
}

// procSamples reads every watched process behind the target.
func (s *sampler) procSamples() []limits.ProcSample {
	out := make([]limits.ProcSample, len(s.procs))
	for i, p := range s.procs {
		out[i] = p.sample()
	}
	return out
}

// processes is the report on the watched processes; end is their state at the end of the hold.
func (s *sampler) processes(end []limits.ProcSample) []report.Process {
	out := make([]report.Process, len(s.procs))
	for i, p := range s.procs {
		out[i] = p.report(end[i])
	}
	return out
}

// kernelSample reads the listener and the counters, and keeps the longest queue.
func (s *sampler) kernelSample() limits.KernelSample {
	if s.kv == nil {
		return limits.KernelSample{}
	}
	k := s.kv.Sample(s.ports...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := k.Listener; l != nil {
		s.queueMax = max(s.queueMax, int64(l.AcceptQueue))
		s.backlogSeen = int64(l.Backlog)
	}
	if !s.frozen && (s.kv.Unavailable == nil || k.Listener != nil) {
		s.gone = s.gone || s.seenAll && k.Listeners < len(s.ports)
		s.seenAll = s.seenAll || k.Listeners == len(s.ports)
	}
	if ct := k.Conntrack; ct != nil {
		s.ctCountMax, s.ct = max(s.ctCountMax, ct.Count), ct
	}
	return k
}

// freezeListeners stops following the listeners' presence.
func (s *sampler) freezeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = true
}

func (s *sampler) kernelSummary(cfg *Config, kv *limits.KernelView, holdEnd limits.KernelSample, procRoot string, rules []limits.FilterRule,
	tasks limits.KernelTasks) *report.Kernel {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := s.kv.Sample(s.ports...)
	k := &report.Kernel{Namespace: "host", Listeners: len(s.ports), ListenBacklog: s.backlogSeen, AcceptQueueMax: s.queueMax, AcceptQueueEnd: -1,
		TCPExt: last.TCPExt, TCPExtRead: last.TCPExtRead, ListenerGone: s.gone, FilterRules: rules, Tasks: &tasks}
	if s.ct != nil {
		k.Conntrack = &report.Conntrack{Max: s.ct.Max, CountMax: s.ctCountMax, Refused: s.ct.Refused}
	}
	if cfg.PrivateNetNS || limits.PrivateNetNS(procRoot) {
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
	if s.keepPoints {
		s.points.Add(report.PointOf(smp))
	}
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
			s.tick()
		}
	}
}

// tick samples both sides and records the row; the progress shows it.
func (s *sampler) tick() report.Sample {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	smp := s.sample()
	s.record(smp)
	if s.progress != nil {
		s.progress.Update(smp)
	}
	return smp
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
