// Package worker runs the generator as several processes: the parent's Pool
// starts "connlimit worker" children and looks like one generator to the
// run, and Serve is the child. Both sides of their protocol live here.
//
// A worker has its share of the connections and its own RLIMIT_NOFILE. Its
// counters live in a block its parent maps too (fd 5, see internal/shm): the
// parent reads them at every sample and the worker never stops to report
// them. It tells of its phases on fd 3 (JSON lines), holds its connections
// until its stdin closes, then writes its results (gob) on fd 4 and exits:
// pipes, not files, so a run killed with -9 leaves nothing behind. A gated
// worker (--gated) starts connecting only when its parent writes startByte
// on its stdin: the run keeps a few ramping at once.
package worker

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/connlimit/connlimit/internal/child"
	"github.com/connlimit/connlimit/internal/shm"
	"github.com/connlimit/connlimit/loadgen"
	"github.com/connlimit/connlimit/report"
)

// Pool runs the generator as several "connlimit worker" processes and
// looks like one generator to the rest of the run: one snapshot, one list of
// results in time order. Open, Hold and Close are called from one
// goroutine; Snapshot and Watch are safe from any.
type Pool struct {
	workers []*worker
	ramp    int      // workers connecting at once; 0 = all, none gated
	opened  chan int // a worker's index once it has made its attempts or is gone
	next    int      // the next gated worker to release
	merged  loadgen.Attempts
	from    []uint16 // the worker each merged attempt came from
	closed  bool
	closing atomic.Bool // Close has begun: a worker that exits now was asked to
	epoch   time.Time   // every worker's attempt starts count from here
}

type worker struct {
	c       *child.Child // the process, its stdin and how it ended
	events  *os.File
	results *os.File // read end of the worker's fd 4
	// res is what came through it, decoded as it arrives (while the other
	// workers are still closing their connections), and read to its end
	// whatever it holds, so the worker never blocks on it.
	res    loadgen.Attempts
	resErr error
	n      int
	dsts   []int // indexes into Spec.Targets, in the order the worker was given them

	mu       sync.Mutex
	mem      []byte            // the counters block shared with the worker; nil once released
	counters *loadgen.Counters // in mem
	latest   loadgen.Snapshot  // the counters when mem was released
	err      string
	gone     chan struct{} // closed once the event stream ended
	early    bool          // it exited before Close asked it to
	once     sync.Once     // for the index sent when the worker has made its attempts
	wg       sync.WaitGroup
}

// Spec is what every worker shares.
type Spec struct {
	Exe     string // the binary with the worker subcommand
	Targets []netip.AddrPort
	Probe   ProbeSpec

	Connections int     // in all, split as evenly as possible
	Rate        float64 // in all; 0: as fast as possible
	// Concurrency is the connects in flight in all, shared by the workers
	// connecting at once; with PerWorkerConcurrency each worker has it.
	Concurrency          int
	PerWorkerConcurrency bool
	ConnectTimeout       time.Duration
	GreetingTimeout      time.Duration
	MSS                  int
	Sources              []netip.Addr // shared out among the workers
	LocalAddrs           bool         // keep each connection's local address (the CSV, --probe accept)
	QuietClose           bool         // loadgen.Config.QuietClose: the targets are connlimit's own
	// Ramp is how many workers connect at once; 0: all of them, none gated.
	Ramp int
	// Reserve is the descriptors a worker keeps for itself beside its connections.
	Reserve int
}

// Start starts n workers with connections split as evenly as possible;
// each gets an equal part of the source addresses, and of the rate among
// those that connect at once. With Spec.Ramp they wait to be released by
// Open. On error every worker started is stopped and reaped.
func Start(spec Spec, n int) (*Pool, error) {
	p := &Pool{ramp: spec.Ramp, opened: make(chan int, n)}
	p.epoch = time.Now()
	epoch := p.epoch.UnixNano()
	active := n
	if p.ramp > 0 {
		active = p.ramp
	}
	conc := max(1, spec.Concurrency/active) // the total in flight
	if spec.PerWorkerConcurrency {
		conc = spec.Concurrency // each worker keeps its own connects flowing
	}
	for i := range n {
		count := spec.Connections/n + btoi(i < spec.Connections%n)
		idx := targetsOf(i, n, len(spec.Targets))
		var dsts []string
		for _, j := range idx {
			dsts = append(dsts, spec.Targets[j].String())
		}
		args := []string{"worker", "--targets", strings.Join(dsts, ","), "--connections", strconv.Itoa(count),
			"--nofile", strconv.Itoa(count + spec.Reserve),
			"--rate", strconv.FormatFloat(spec.Rate/float64(active), 'f', -1, 64),
			"--concurrency", strconv.Itoa(conc),
			"--connect-timeout", spec.ConnectTimeout.String(), "--greeting-timeout", spec.GreetingTimeout.String(),
			"--probe", spec.Probe.Kind, "--payload", strconv.Itoa(spec.Probe.Payload), "--mss", strconv.Itoa(spec.MSS),
			"--host", spec.Probe.Host, "--http-path", spec.Probe.HTTPPath, "--tls-server-name", spec.Probe.ServerName,
			"--epoch", strconv.FormatInt(epoch, 10)}
		if spec.Probe.Builtin {
			args = append(args, "--builtin")
		}
		if p.ramp > 0 {
			args = append(args, "--gated")
		}
		if spec.LocalAddrs {
			args = append(args, "--local-addrs")
		}
		if spec.QuietClose {
			args = append(args, "--quiet-close")
		}
		if src := shareOf(spec.Sources, i, n); len(src) > 0 {
			args = append(args, "--source-ips", joinAddrs(src))
		}
		w, err := startWorker(spec.Exe, args, i, p.opened)
		if err != nil {
			p.Close()
			return nil, err
		}
		w.n, w.dsts = count, idx
		p.workers = append(p.workers, w)
	}
	return p, nil
}

// targetsOf are the targets worker i of n connects to. When the counts
// divide evenly each worker gets its own targets (worker k → target k, as
// the C yardstick pairs its processes): a target is then woken by one
// generator that keeps it busy, not by all of them in turn (the million
// ramp went from 37 to 30 s). Otherwise every worker
// spreads over every target, which keeps each target's share equal.
func targetsOf(i, n, targets int) []int {
	var idx []int
	switch {
	case targets%n == 0:
		for j := i; j < targets; j += n {
			idx = append(idx, j)
		}
	case n%targets == 0:
		idx = []int{i % targets}
	default:
		for j := range targets {
			idx = append(idx, j)
		}
	}
	return idx
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// shareOf gives worker i of n its own source addresses (all of them when
// there are fewer addresses than workers).
func shareOf(all []netip.Addr, i, n int) []netip.Addr {
	if len(all) < n {
		return all
	}
	return all[i*len(all)/n : (i+1)*len(all)/n]
}

func joinAddrs(as []netip.Addr) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = a.String()
	}
	return strings.Join(parts, ",")
}

// blockSize is the worker's counters block: one page.
const blockSize = 4096

// startWorker starts one worker; its index goes to opened once it has
// made its attempts, or is gone.
func startWorker(exe string, args []string, index int, opened chan<- int) (*worker, error) {
	// fd 3: events, fd 4: results, fd 5: the counters block. A worker's
	// work is one loop goroutine: with a second P the runtime wakes threads
	// to look for work that is not there (million ramp with GOMAXPROCS=1 in
	// every process: 30.9 → 27.9 s, 16k → 13k context switches/s).
	c, err := child.Start(child.Spec{Exe: exe, Args: args, Pipes: 2, Block: blockSize, Stdin: true, Stderr: os.Stderr, OneP: true})
	if err != nil {
		return nil, fmt.Errorf("start generator worker: %w", err)
	}
	w := &worker{c: c, gone: make(chan struct{}), events: c.Pipes[0], results: c.Pipes[1],
		mem: c.Mem, counters: shm.At[loadgen.Counters](c.Mem)}
	w.wg.Go(func() { w.read(index, opened) })
	w.wg.Go(func() {
		w.res, w.resErr = decodeAttempts(w.results)
		io.Copy(io.Discard, w.results)
	})
	return w, nil
}

// DiedError is the error of a run whose generator worker died before it
// was asked to stop.
type DiedError struct{ Death report.Death }

func (e *DiedError) Error() string { return e.Death.Text() }

// died describes worker i, which has exited; its counters outlive it.
func (p *Pool) died(i int) *DiedError {
	w := p.workers[i]
	end := w.c.End()
	d := report.Death{Role: "generator", PID: w.c.Pid(), Signal: end.Signal, ExitStatus: end.Status, After: w.snapshot().Attempted}
	if e := w.errText(); e != "" {
		d.Log = strings.TrimPrefix(e, ": ")
	}
	d.Lost = d.After
	return &DiedError{Death: d}
}

// Watch calls stop with a *DiedError the moment a worker exits before
// Close asked it to; it returns when ctx ends or after the first death.
func (p *Pool) Watch(ctx context.Context, stop func(error)) {
	dead := make(chan int, len(p.workers))
	var wg sync.WaitGroup
	for i, w := range p.workers {
		wg.Go(func() {
			select {
			case <-w.c.Exited():
				if !p.closing.Load() {
					dead <- i
				}
			case <-ctx.Done():
			}
		})
	}
	select {
	case i := <-dead:
		stop(p.died(i))
	case <-ctx.Done():
	}
	wg.Wait()
}

// read follows the worker's events until its pipe closes.
func (w *worker) read(index int, opened chan<- int) {
	defer close(w.gone)
	done := func() { opened <- index } // buffered for every worker: never blocks
	defer w.once.Do(done)
	sc := bufio.NewScanner(w.events)
	for sc.Scan() {
		var ev event
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		if ev.Err != "" {
			w.mu.Lock()
			w.err = ev.Err
			w.mu.Unlock()
		}
		if ev.Event == "opened" {
			w.once.Do(done)
		}
	}
}

// Open waits until every worker has made its attempts. Gated workers are
// released p.ramp at a time, the next one as soon as one is done: a worker
// that stalls (connects that time out) holds up only its own slot.
func (p *Pool) Open(ctx context.Context) error {
	if p.ramp > 0 {
		for p.next < p.ramp {
			p.release()
		}
	}
	for range p.workers {
		select {
		case <-p.opened:
			if p.ramp > 0 && p.next < len(p.workers) {
				p.release()
			}
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	for i, w := range p.workers {
		select {
		case <-w.gone:
			return fmt.Errorf("generator worker %d (pid %d) ended during the ramp%s", i, w.c.Pid(), w.errText())
		default:
		}
	}
	return nil
}

// release lets the next gated worker start connecting. A worker already
// gone does not read it; Open learns of it through opened.
func (p *Pool) release() {
	_, _ = p.workers[p.next].c.Stdin.Write([]byte{startByte})
	p.next++
}

func (w *worker) errText() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == "" {
		return ""
	}
	return ": " + w.err
}

// Hold waits d, or until ctx ends or a worker dies.
func (p *Pool) Hold(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	anyGone := make(chan int, len(p.workers))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for i, w := range p.workers {
		wg.Go(func() {
			select {
			case <-w.gone:
				anyGone <- i
			case <-stop:
			}
		})
	}
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	case i := <-anyGone:
		return fmt.Errorf("generator worker %d (pid %d) ended during the hold%s", i, p.workers[i].c.Pid(), p.workers[i].errText())
	}
}

// snapshot reads the worker's counters where it keeps them.
func (w *worker) snapshot() loadgen.Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mem == nil {
		return w.latest
	}
	return w.counters.Snapshot()
}

// release keeps the counters' last values and unmaps the block.
func (w *worker) release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mem == nil {
		return
	}
	w.latest = w.counters.Snapshot()
	shm.Unmap(w.mem)
	w.mem, w.counters = nil, nil
}

// MarkQueued turns served result i into Queued (see
// loadgen.Generator.MarkQueued), in the counts of the worker it came from
// too. Call it after Close.
func (p *Pool) MarkQueued(i int) bool {
	r := &p.merged.Results[i]
	if r.Outcome != loadgen.Served {
		return false
	}
	r.Outcome = loadgen.Queued
	w := p.workers[p.from[i]]
	w.mu.Lock()
	w.latest.Served--
	w.latest.Queued++
	w.mu.Unlock()
	return true
}

// Snapshot sums the workers' counters.
func (p *Pool) Snapshot() loadgen.Snapshot {
	var s loadgen.Snapshot
	for _, w := range p.workers {
		l := w.snapshot()
		s.Attempted += l.Attempted
		s.Connecting += l.Connecting
		s.Open += l.Open
		s.Served += l.Served
		s.Queued += l.Queued
		s.Failed += l.Failed
		s.ConnectTimeouts += l.ConnectTimeouts
	}
	return s
}

// Close tells every worker to close its connections (its stdin closes),
// waits for them, and merges their results in time order.
func (p *Pool) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	p.closing.Store(true)
	for _, w := range p.workers {
		select {
		case <-w.c.Exited():
			w.early = true
		default:
		}
		w.c.Stdin.Close()
	}
	var errs []error
	var parts []part
	for i, w := range p.workers {
		select {
		case <-w.c.Exited():
		case <-time.After(30 * time.Second):
			w.c.Cmd.Process.Kill()
			<-w.c.Exited()
		}
		w.wg.Wait()
		w.events.Close()
		var died *DiedError
		if w.early {
			died = p.died(i) // before release: its counters say how many attempts it made
		}
		w.release()
		w.results.Close()
		err := w.c.Err()
		var ee *exec.ExitError
		res, ferr := w.res, w.resErr
		w.res = loadgen.Attempts{}
		switch {
		case died != nil && ferr != nil:
			// Its attempts are counted, as lost: their details died with it.
			errs = append(errs, died)
			res = p.lostResults(i, died)
		case ferr != nil:
			errs = append(errs, fmt.Errorf("generator worker %d results: %w", i, ferr))
			continue
		case err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 130):
			errs = append(errs, fmt.Errorf("generator worker %d (pid %d): %v%s", i, w.c.Pid(), err, w.errText()))
		}
		parts = append(parts, part{res, i})
	}
	p.merged, p.from = merge(parts, func(w int) []int { return p.workers[w].dsts })
	return errors.Join(errs...)
}

// part is one worker's attempts: w is its index.
type part struct {
	res loadgen.Attempts
	w   int
}

// merge makes one list of the workers' attempts in the order they were made
// (every worker counted its starts from the same epoch, so ties keep worker
// order), numbered from 1, with each Dst turned from the worker's index into
// the run's (dsts(w) are worker w's targets), the worker each came from, and
// the reasons and TCP_INFO readings under the merged index.
func merge(parts []part, dsts func(w int) []int) (loadgen.Attempts, []uint16) {
	refs := mergeOrder(parts)
	out := loadgen.Attempts{Results: make([]loadgen.Result, len(refs)), Reasons: map[int32]string{}}
	from := make([]uint16, len(refs))
	if slices.ContainsFunc(parts, func(pt part) bool { return pt.res.Segs != nil }) {
		out.Segs = make([]loadgen.SegInfo, len(refs))
	}
	for gi, rf := range refs {
		pt := parts[rf.part]
		r := pt.res.Results[rf.i]
		r.Seq = uint32(gi) + 1
		r.Dst = uint16(dsts(pt.w)[r.Dst])
		from[gi] = uint16(pt.w)
		out.Results[gi] = r
		if reason, ok := pt.res.Reasons[int32(rf.i)]; ok {
			out.Reasons[int32(gi)] = reason
		}
		if out.Segs != nil && rf.i < len(pt.res.Segs) {
			out.Segs[gi] = pt.res.Segs[rf.i]
		}
	}
	return out, from
}

type ref struct{ part, i int }

// mergeOrder is every attempt's place in the merged list: by start, ties in
// worker order. A worker's attempts come in start order, so this is a merge
// of sorted lists (a million attempts from 51 workers: a scan of the heads,
// no sort); a list out of order, which no worker makes, is sorted instead.
func mergeOrder(parts []part) []ref {
	n := 0
	sorted := true
	for _, pt := range parts {
		n += len(pt.res.Results)
		sorted = sorted && slices.IsSortedFunc(pt.res.Results, func(a, b loadgen.Result) int { return cmp.Compare(a.Start, b.Start) })
	}
	refs := make([]ref, 0, n)
	if !sorted {
		for pi, pt := range parts {
			for i := range pt.res.Results {
				refs = append(refs, ref{pi, i})
			}
		}
		slices.SortStableFunc(refs, func(a, b ref) int {
			return cmp.Compare(parts[a.part].res.Results[a.i].Start, parts[b.part].res.Results[b.i].Start)
		})
		return refs
	}
	// A binary heap of the workers with attempts left, by their next
	// attempt's start, then by worker.
	next := make([]int, len(parts))
	less := func(a, b int) bool {
		sa, sb := parts[a].res.Results[next[a]].Start, parts[b].res.Results[next[b]].Start
		return sa < sb || sa == sb && a < b
	}
	var h []int
	for pi, pt := range parts {
		if len(pt.res.Results) > 0 {
			h = append(h, pi)
		}
	}
	down := func(i int) {
		for {
			c := 2*i + 1
			if c >= len(h) {
				return
			}
			if c+1 < len(h) && less(h[c+1], h[c]) {
				c++
			}
			if !less(h[c], h[i]) {
				return
			}
			h[i], h[c] = h[c], h[i]
			i = c
		}
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		down(i)
	}
	for len(h) > 0 {
		pi := h[0]
		refs = append(refs, ref{pi, next[pi]})
		if next[pi]++; next[pi] == len(parts[pi].res.Results) {
			h[0] = h[len(h)-1]
			h = h[:len(h)-1]
		}
		down(0)
	}
	return refs
}

// lostResults stands for the attempts of worker i, which died before it
// handed them over: as many as its counters counted, outcome Lost, after
// every attempt whose details survived.
func (p *Pool) lostResults(i int, d *DiedError) loadgen.Attempts {
	res := loadgen.Attempts{Results: make([]loadgen.Result, d.Death.Lost), Reasons: map[int32]string{}}
	at := time.Since(p.epoch)
	reason := fmt.Sprintf("generator worker %d (pid %d) died: this attempt's details died with it", i, d.Death.PID)
	for j := range res.Results {
		res.Results[j] = loadgen.Result{Outcome: loadgen.Lost, FD: -1, Start: at}
		res.Reasons[int32(j)] = reason
	}
	return res
}

// Attempts are the merged attempts, after Close.
func (p *Pool) Attempts() loadgen.Attempts { return p.merged }

// Epoch is the instant every worker's Result.Start counts from.
func (p *Pool) Epoch() time.Time { return p.epoch }

// Procs is each worker's share and final counts, for the report.
func (p *Pool) Procs() []report.GeneratorProc {
	out := make([]report.GeneratorProc, len(p.workers))
	for i, w := range p.workers {
		w.mu.Lock()
		l := w.latest
		w.mu.Unlock()
		out[i] = report.GeneratorProc{PID: w.c.Pid(), Connections: w.n, Served: l.Served, Queued: l.Queued, Failed: l.Failed}
	}
	return out
}
