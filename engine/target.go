package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/connlimit/connlimit/limits"
	"github.com/connlimit/connlimit/report"
	"github.com/connlimit/connlimit/target"
)

// targetSide is what the generator connects to: the built-in target's
// process, or a running server named by --target, with the processes behind
// its listener watched from outside.
type targetSide struct {
	addr  netip.AddrPort
	addrs []netip.AddrPort // every destination (several built-in targets); addrs[0] == addr
	host  string           // as the user wrote it, for the HTTP Host header
	tp    *target.Process  // nil for --target; the first of tps
	tps   []*target.Process
	fp    *target.Process // the forwarder of --forward, else nil
	procs []*procWatch
}

func (s *targetSide) close() {
	s.stop()
	for _, p := range s.procs {
		p.close()
	}
}

// stop stops the forwarder, then the targets, one per CPU at a time: each
// closes its connections and is reaped (which frees its /proc entries),
// kernel work that one target at a time left a core idle for (2 s of idle
// CPU in a 300,000-connection quiet teardown). More at once would share the
// cores and let a target's grace run out while it is still closing.
func (s *targetSide) stop() {
	if s.fp != nil {
		s.fp.Stop(2 * time.Second)
	}
	var wg sync.WaitGroup
	turn := make(chan struct{}, runtime.NumCPU())
	for _, tp := range s.tps {
		wg.Go(func() {
			turn <- struct{}{}
			defer func() { <-turn }()
			tp.Stop(2 * time.Second)
		})
	}
	wg.Wait()
}

// startBuiltin starts the built-in target process(es), each on its own port
// (--target-port, then the ports after it; or ports the kernel picks).
func startBuiltin(ctx context.Context, cfg *Config, env Env) (*targetSide, error) {
	side := &targetSide{}
	for i := range max(1, cfg.TargetProcs) {
		port := 0
		if cfg.TargetPort != 0 {
			port = cfg.TargetPort + i
		}
		tp, err := target.Start(ctx, target.ProcessConfig{
			Exe: env.Exe, Addr: fmt.Sprintf("127.0.0.1:%d", port),
			NoFile: cfg.TargetNoFile, StatsInterval: cfg.Interval, Behavior: cfg.Behavior,
		})
		if err != nil {
			side.close()
			if cause := context.Cause(ctx); cause != nil {
				return nil, cause
			}
			return nil, err
		}
		side.tps = append(side.tps, tp)
		a, err := netip.ParseAddrPort(tp.Ready().Addr)
		if err != nil {
			side.close()
			return nil, fmt.Errorf("target reported address %q: %w", tp.Ready().Addr, err)
		}
		side.addrs = append(side.addrs, a)
	}
	tp, addr := side.tps[0], side.addrs[0]
	side.tp, side.addr, side.host = tp, addr, addr.String()
	if !cfg.Forward {
		return side, nil
	}
	nofile := cfg.ForwardNoFile
	if nofile == 0 {
		nofile = cfg.TargetNoFile
	}
	fp, err := target.Start(ctx, target.ProcessConfig{
		Exe: env.Exe, Addr: "127.0.0.1:0", NoFile: nofile, StatsInterval: cfg.Interval,
		Behavior: target.Behavior{OnEMFILE: cfg.Behavior.OnEMFILE, Backlog: cfg.Behavior.Backlog}, ForwardTo: addr.String(),
	})
	if err != nil {
		tp.Stop(2 * time.Second)
		if cause := context.Cause(ctx); cause != nil {
			return nil, cause
		}
		return nil, fmt.Errorf("start the forwarder: %w", err)
	}
	if side.addr, err = netip.ParseAddrPort(fp.Ready().Addr); err != nil {
		fp.Stop(2 * time.Second)
		side.close()
		return nil, fmt.Errorf("forwarder reported address %q: %w", fp.Ready().Addr, err)
	}
	side.fp, side.host, side.addrs = fp, side.addr.String(), []netip.AddrPort{side.addr}
	return side, nil
}

// resolveExternal checks --target: an address (loopback unless
// --allow-remote) where, if it is local, something listens.
func resolveExternal(ctx context.Context, cfg *Config, kv *limits.KernelView) (*targetSide, error) {
	host, port, _ := net.SplitHostPort(cfg.Target)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return nil, usageErr("--target: cannot resolve %q: %v; want %s", host, err, TargetRange)
	}
	pn, err := net.LookupPort("tcp", port)
	if err == nil && pn == 0 {
		err = errors.New("port 0 is no port a server listens on")
	}
	if err != nil {
		return nil, usageErr("--target: port %q: %v; want %s", port, err, TargetRange)
	}
	addr := netip.AddrPortFrom(ips[0].Unmap(), uint16(pn))
	if !addr.Addr().IsLoopback() && !cfg.AllowRemote {
		return nil, usageErr("--target: %s is not a loopback address; add --allow-remote if you mean to flood it", addr.Addr())
	}
	if cfg.Probe == "accept" && !addr.Addr().IsLoopback() {
		return nil, usageErr("--probe accept: %s is not on this machine, and the kernel tells accepted from queued only for its own listeners; want --probe connect", addr.Addr())
	}
	side := &targetSide{addr: addr, addrs: []netip.AddrPort{addr}, host: host}
	if addr.Addr().IsLoopback() && kv.Unavailable == nil {
		if ls, err := kv.Listeners(addr.Port()); err == nil && listenerFor(ls, addr) == nil {
			return nil, fmt.Errorf("--target %s: nothing listens there (sock_diag sees no listener on port %d): start the server or fix the address",
				cfg.Target, addr.Port())
		}
	}
	return side, nil
}

// listenerFor picks the listener that takes connections to addr: bound to
// it, or to the wildcard address of its family.
func listenerFor(ls []limits.Listener, addr netip.AddrPort) *limits.Listener {
	for i := range ls {
		a := ls[i].Addr.Addr().Unmap()
		if a == addr.Addr().Unmap() || a.IsUnspecified() {
			return &ls[i]
		}
	}
	return nil
}

// watchProcesses finds the processes behind the target's listener (by
// --target-pid, or by the listener's socket inode) and starts watching them.
func watchProcesses(procRoot string, kv *limits.KernelView, addr netip.AddrPort, pids []int) []*procWatch {
	var out []*procWatch
	if len(pids) > 0 {
		for _, pid := range pids {
			out = append(out, newProcWatch(procRoot, pid, "--target-pid"))
		}
		return out
	}
	ls, err := kv.Listeners(addr.Port())
	if err != nil {
		return nil
	}
	l := listenerFor(ls, addr)
	if l == nil {
		return nil
	}
	foundBy := fmt.Sprintf("socket inode %d", l.Inode)
	owners, denied, err := limits.SocketOwners(procRoot, l.Inode)
	if err != nil {
		return nil
	}
	for _, pid := range owners {
		out = append(out, newProcWatch(procRoot, pid, foundBy))
	}
	if len(owners) == 0 && denied > 0 {
		out = append(out, &procWatch{foundBy: foundBy, note: fmt.Sprintf(
			"the listener belongs to uid %d, whose processes this user cannot read (%d denied): run connlimit as that user or as root, or pass --target-pid; the verdict falls back to what the clients saw",
			l.UID, denied)})
	}
	return out
}

// procWatch follows one process behind the target during the run.
type procWatch struct {
	w       *limits.ProcWatch // nil when it cannot be read
	pid     int
	foundBy string
	cg      *limits.CgroupPaths // nil when its cgroups are unknown
	cgBase  limits.Cgroup
	split   *limits.Split // its connections at the end of the hold; nil when unknown
	tasks   *limits.Tasks // its user's tasks against RLIMIT_NPROC at the end of the hold; nil when unknown

	mu      sync.Mutex
	stopped bool // the hold is over: teardown is not worth watching
	note    string
	max     limits.ProcSample // the sample with the most descriptors open
	slots   int               // the most slots used
	last    limits.ProcSample
	atLimit bool
}

func newProcWatch(procRoot string, pid int, foundBy string) *procWatch {
	p := &procWatch{pid: pid, foundBy: foundBy}
	// Its cgroups' baseline: what they refused during the run is evidence
	// even once the process is gone (the OOM killer's victim).
	if cg, err := limits.CgroupOf(procRoot, limits.DefaultCgroupRoot, pid); err == nil {
		p.cg, p.cgBase = &cg, cg.Read()
	}
	w, err := limits.WatchProcess(procRoot, pid)
	if err != nil {
		p.note = fmt.Sprintf("cannot watch it: %v (run connlimit as its user or as root); the verdict falls back to what the clients saw", err)
		p.w = w // names only
		return p
	}
	p.w = w
	p.sample()
	return p
}

// sample reads the process once; the first failure is kept as the note.
func (p *procWatch) sample() limits.ProcSample {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w == nil || p.note != "" || p.stopped {
		return p.last
	}
	s, err := p.w.Sample()
	if err != nil {
		p.note = fmt.Sprintf("stopped being readable during the run: %v", err)
		return p.last
	}
	p.last = s
	if s.FDs > p.max.FDs {
		p.max = s
	}
	p.slots = max(p.slots, s.SlotsUsed)
	p.atLimit = p.atLimit || s.AtLimit()
	return s
}

// stop ends sampling; later samples return the last reading.
func (p *procWatch) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
}

func (p *procWatch) close() {
	if p.w != nil {
		p.w.Close()
	}
}

func (p *procWatch) report(end limits.ProcSample) report.Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := report.Process{PID: p.pid, FoundBy: p.foundBy, Note: p.note, Readable: p.note == "" && p.w != nil}
	if p.w != nil {
		r.Name, r.Cmdline = p.w.Name, p.w.Cmdline
	}
	if r.Readable || p.last.Soft > 0 {
		r.NoFileSoft, r.NoFileHard = p.last.Soft, p.last.Hard
		r.FDsMax, r.FDsEnd, r.AtLimit, r.SlotsUsedMax = p.max.FDs, end.FDs, p.atLimit, p.slots
	}
	if sp := p.split; sp != nil {
		r.ConnsAccepted, r.ConnsDialed = sp.Accepted, sp.Dialed
		if sp.Dialed > 0 {
			r.DialedTo = sp.DialedTo.String()
		}
	}
	if tk := p.tasks; tk != nil {
		r.NProc = &report.ProcessNProc{UID: tk.UID, Soft: tk.NProcSoft, Threads: tk.Threads, UserTasks: tk.UserTasks, AtLimit: tk.AtLimit()}
	}
	if p.cg != nil {
		r.Unit = p.cg.Unit
		c := p.cg.Read().Since(p.cgBase)
		r.Cgroup = &report.ProcessCgroup{PidsMax: c.PidsMax, PidsCurrent: c.PidsCurrent, PidsRefused: c.PidsRefused,
			MemoryLimit: c.MemoryLimit, MemoryFailcnt: c.MemoryFailcnt, OOMKills: c.OOMKills}
	}
	return r
}

// splitSockets learns, at the end of the hold, what each process behind an
// external target holds its connections for: accepted on port, or dialed
// out (a proxy dials one for each it accepts). One walk of every
// established socket, so once per run.
func splitSockets(kv *limits.KernelView, procRoot string, procs []*procWatch, port uint16) {
	conns, err := kv.Established()
	if err != nil {
		return
	}
	for _, p := range procs {
		if p.pid <= 0 {
			continue
		}
		if sp, err := limits.SplitSockets(procRoot, p.pid, port, conns); err == nil {
			p.mu.Lock()
			p.split = &sp
			p.mu.Unlock()
		}
	}
}

// firstPID is the first process found behind the port, 0 if none.
func firstPID(procs []*procWatch) int {
	for _, p := range procs {
		if p.pid > 0 {
			return p.pid
		}
	}
	return 0
}

// readTasks reads, at the end of the hold, each process's standing against
// RLIMIT_NPROC: one walk of /proc, so once per run.
func readTasks(procRoot string, procs []*procWatch) {
	for _, p := range procs {
		if p.pid <= 0 {
			continue
		}
		if tk, err := limits.ReadTasks(procRoot, p.pid); err == nil {
			p.mu.Lock()
			p.tasks = &tk
			p.mu.Unlock()
		}
	}
}
