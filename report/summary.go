// Package report turns a run's typed results into what people and CI jobs
// read: the plain-words summary, its JSON form, the per-attempt CSV, the
// timeline and the live progress display; a shard's histogram and the
// merge of shards; inspect's view; JUnit, Prometheus and the job summary. It never writes to os.Stdout
// itself: every encoder takes an io.Writer.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/connlimit/connlimit/limits"
	"github.com/connlimit/connlimit/loadgen"
)

// SchemaVersion is the JSON summary's version; it changes only when a key
// changes meaning or goes away.
const SchemaVersion = 1

// First-limit verdicts. CI jobs match on these words: never rename them.
const (
	LimitNone               = "none"
	LimitTargetFD           = "target-fd-limit"
	LimitTargetNotAccepting = "target-not-accepting"
	LimitAcceptQueueFull    = "accept-queue-full"
	LimitTargetClosed       = "target-closed"
	LimitClientFD           = "client-fd-limit"
	LimitSystemFD           = "system-fd-limit"
	LimitEphemeralPorts     = "ephemeral-ports"
	LimitRefused            = "refused"
	LimitForwarderFD        = "forwarder-fd-limit"
	LimitCorruptReply       = "corrupt-reply"
	LimitOtherError         = "other-error"
	LimitTargetDied         = "target-died"
	LimitGeneratorDied      = "generator-died"
	LimitConntrackFull      = "conntrack-full"
	LimitPacketFilter       = "packet-filter"
	LimitTargetTask         = "target-task-limit"
	LimitTargetMemory       = "target-memory-limit"
)

// Death is a process of the run that ended before it was asked to: the
// built-in target, the forwarder, or a generator worker.
type Death struct {
	Role string `json:"role"` // "target", "forwarder" or "generator"
	PID  int    `json:"pid"`
	// Signal is the signal that killed it ("SIGKILL"); empty when it exited.
	Signal string `json:"signal,omitempty"`
	// ExitStatus is its exit status; -1 when a signal killed it.
	ExitStatus int `json:"exit_status"`
	// After is what it had done: connections accepted (target, forwarder)
	// or attempts made (generator).
	After int64 `json:"after"`
	// Lost are the attempts whose details died with it (a generator's);
	// they are counted as outcome "lost".
	Lost int64 `json:"lost"`
	// Log is the last line it wrote to stderr, if any.
	Log string `json:"log,omitempty"`
}

// Text is one line for people: "target (pid 12) was killed by SIGKILL after 310 connections".
func (d *Death) Text() string {
	how := fmt.Sprintf("exited with status %d", d.ExitStatus)
	if d.Signal != "" {
		how = "was killed by " + d.Signal
	}
	who, what := d.Role, "connections"
	if d.Role == "generator" {
		who, what = "generator worker", "attempts"
	}
	msg := fmt.Sprintf("%s (pid %d) %s after %d %s", who, d.PID, how, d.After, what)
	if d.Log != "" {
		msg += fmt.Sprintf(", its last words: %q", d.Log)
	}
	return msg
}

// Summary is the run in figures. Its JSON form is the --json report.
type Summary struct {
	SchemaVersion int    `json:"schema_version"`
	Interrupted   bool   `json:"interrupted"`
	Error         string `json:"error,omitempty"`
	FirstLimit    string `json:"first_limit"`
	FirstLimitAt  int64  `json:"first_limit_at"`
	// The setting behind the first limit, its value, and the change that
	// would move it; empty for "none".
	FirstLimitSetting string         `json:"first_limit_setting"`
	FirstLimitValue   string         `json:"first_limit_value"`
	FirstLimitFix     string         `json:"first_limit_fix"`
	TargetAddr        string         `json:"target_addr"`
	Requested         int            `json:"requested"`
	Attempted         int            `json:"attempted"`
	Outcomes          map[string]int `json:"outcomes"`
	ConnectLatencyUS  Latency        `json:"connect_latency_us"`
	ConnectRatePerS   float64        `json:"connect_rate_per_s"`
	DurationS         float64        `json:"duration_s"`
	Limits            Limits         `json:"limits"`
	Generator         Generator      `json:"generator"`
	// Probe is how a connection was judged served: connect, greeting, echo or http.
	Probe  string  `json:"probe"`
	Target *Target `json:"target"`
	// Generators are the generator processes of a run with --procs above 1.
	Generators []GeneratorProc `json:"generators,omitempty"`
	// Targets are every built-in target process when there are several
	// (run --target-procs); Target is then the one that ran out first.
	Targets []Target `json:"targets,omitempty"`
	// Forwarder is the port forwarder between the generator and the target
	// (run --forward); null without one.
	Forwarder *Target `json:"forwarder"`
	// TargetProcesses are the processes behind the target's listening
	// socket, watched from outside during the run.
	TargetProcesses []Process `json:"target_processes"`
	// Reasons are what the target said when it refused or closed, most frequent first.
	Reasons []Reason `json:"reasons"`
	Kernel  *Kernel  `json:"kernel"`
	// Segments is how the payload left and came back, from TCP_INFO; null
	// without a payload.
	Segments *Segments    `json:"segments"`
	Gates    []GateResult `json:"gates"`
	// Died is the process of the run that died first; null when none did.
	Died *Death `json:"died"`
	// Shard makes this summary one shard of a larger run (--shard);
	// absent otherwise.
	Shard *ShardInfo `json:"shard,omitempty"`
	// Shards and Merge are a merged summary's (connlimit merge): a line
	// per shard, and how they were combined; absent otherwise.
	Shards []ShardRow `json:"shards,omitempty"`
	Merge  *MergeInfo `json:"merge,omitempty"`

	latency      *hdrhistogram.Histogram // every handshake's time; nil for a summary read from JSON
	otherErrno   string                  // of the first attempt with outcome other, for the verdict's value
	servedClosed int                     // connections the target answered and closed later: a server reusing its slots
}

// Segments summarises TCP_INFO over the connections whose payload came back.
type Segments struct {
	PayloadBytes int `json:"payload_bytes"`
	MSSAsked     int `json:"mss_asked"` // --mss; 0 when not set
	// MSSUsed, DataSegsOut and DataSegsIn are the most common values
	// (tcpi_snd_mss, tcpi_data_segs_out, tcpi_data_segs_in).
	MSSUsed     int `json:"mss_used"`
	DataSegsOut int `json:"data_segs_out"`
	DataSegsIn  int `json:"data_segs_in"`
	// Split is the payload cut at MSSUsed: "1448+1448+1448+656".
	Split       string `json:"split"`
	Connections int    `json:"connections"` // with a TCP_INFO reading
	Retrans     int64  `json:"retrans"`     // over all of them
}

// GeneratorProc is one generator process's share of a multi-process run.
type GeneratorProc struct {
	PID         int   `json:"pid"`
	Connections int   `json:"connections"`
	Served      int64 `json:"served"`
	Queued      int64 `json:"queued"`
	Failed      int64 `json:"failed"`
}

// Process is one process behind the target's listener.
type Process struct {
	PID     int    `json:"pid"`
	Name    string `json:"name"`
	Cmdline string `json:"cmdline"`
	// FoundBy says how it was found: "socket inode N" or "--target-pid".
	FoundBy string `json:"found_by"`
	// Readable is false when its /proc entries could not be read; Note says why.
	Readable   bool   `json:"readable"`
	Note       string `json:"note,omitempty"`
	NoFileSoft uint64 `json:"nofile_soft"`
	NoFileHard uint64 `json:"nofile_hard"`
	// FDsMax is the most descriptors seen open, FDsEnd those at the end of the hold.
	FDsMax int `json:"fds_max"`
	FDsEnd int `json:"fds_end"`
	// SlotsUsedMax is the most descriptors numbered below the soft limit:
	// only those count against it.
	SlotsUsedMax int `json:"slots_used_max"`
	// AtLimit is true if a sample found every descriptor slot below the soft limit used.
	AtLimit bool `json:"at_limit"`
	// Cgroup is its task and memory limits and what they refused during the
	// run; null when its cgroups could not be found.
	Cgroup *ProcessCgroup `json:"cgroup"`
	// Unit is the systemd unit it runs in, when its cgroup names one: the
	// fix then names the unit's setting.
	Unit string `json:"unit,omitempty"`
	// NProc is its user's tasks against its RLIMIT_NPROC at the end of the
	// hold (with --target); null when not read.
	NProc *ProcessNProc `json:"nproc"`
	// ConnsAccepted and ConnsDialed are its established connections at the
	// end of the hold (with --target): accepted on the target's port, and
	// dialed out, mostly to DialedTo. A process that dials one for each it
	// accepts is a forwarder.
	ConnsAccepted int    `json:"conns_accepted"`
	ConnsDialed   int    `json:"conns_dialed"`
	DialedTo      string `json:"dialed_to,omitempty"`
}

// forwarderSlack is how few free descriptors leave a forwarder at its
// limit: it needs two for each connection, and proxies keep a few for
// themselves (HAProxy sizes its maxconn from the limit, and stops accepting
// with a handful free).
const forwarderSlack = 16

// forwarderAtLimit is the first process behind the port that forwards and
// has (almost) no descriptor left, or nil.
func forwarderAtLimit(procs []Process) *Process {
	for i := range procs {
		p := &procs[i]
		if p.forwards() && p.NoFileSoft > 0 && (p.AtLimit || p.NoFileSoft-uint64(p.SlotsUsedMax) < forwarderSlack) {
			return p
		}
	}
	return nil
}

// forwards says whether p holds an outbound connection for about every one
// it accepted: a proxy, which costs two descriptors a connection.
func (p *Process) forwards() bool {
	return p.ConnsAccepted > 0 && 2*p.ConnsDialed >= p.ConnsAccepted
}

// ProcessNProc is a process's standing against RLIMIT_NPROC, which caps the
// processes and threads of its real user, all of them together.
type ProcessNProc struct {
	UID       int    `json:"uid"`
	Soft      uint64 `json:"soft"` // 18446744073709551615: unlimited
	Threads   int    `json:"threads"`
	UserTasks int    `json:"user_tasks"`
	// AtLimit: the user's tasks fill the cap (root is exempt).
	AtLimit bool `json:"at_limit"`
}

// ProcessCgroup is a process's cgroup limits (v1 or v2) and their counters'
// growth over the run. -1 means unknown, or no limit.
type ProcessCgroup struct {
	PidsMax     int64 `json:"pids_max"`     // its tasks (processes and threads) at most
	PidsCurrent int64 `json:"pids_current"` // at the end of the run
	PidsRefused int64 `json:"pids_refused"` // forks and thread starts refused at pids.max during the run
	MemoryLimit int64 `json:"memory_limit_bytes"`
	// MemoryFailcnt is the times usage hit the limit during the run;
	// OOMKills the processes the OOM killer killed in the cgroup.
	MemoryFailcnt int64 `json:"memory_failcnt"`
	OOMKills      int64 `json:"oom_kills"`
}

// Label names the process for people: its command line (nginx shows
// "nginx: worker process" there), else its name.
func (p Process) Label() string {
	l := p.Cmdline
	if l == "" {
		l = p.Name
	}
	if len(l) > 48 {
		l = l[:45] + "..."
	}
	return l
}

// Reason is one thing the target said, with how many attempts it ended.
type Reason struct {
	Outcome string `json:"outcome"`
	Reason  string `json:"reason"`
	Count   int    `json:"count"`
}

// Kernel is the kernel's view of the target's listener during the run.
type Kernel struct {
	// Namespace is "private" when the run had a network namespace of its own
	// (run --netns), else "host".
	Namespace string `json:"namespace"`
	// Exact is true when nothing but the run could move the counters.
	Exact bool `json:"exact"`
	// Unavailable names the readings that could not be made.
	Unavailable string `json:"unavailable,omitempty"`
	// Listeners is how many listening sockets the figures cover (one per
	// target process); their accept queues are added up.
	Listeners int `json:"listeners"`
	// ListenBacklog is the listener's backlog; the accept queue holds one
	// more. -1 when the listener was not seen.
	ListenBacklog int64 `json:"listen_backlog"`
	// AcceptQueueMax is the longest accept queue sampled; AcceptQueueEnd the
	// queue at the end of the hold, before teardown. -1 when not seen.
	AcceptQueueMax int64 `json:"accept_queue_max"`
	AcceptQueueEnd int64 `json:"accept_queue_end"`
	// ServedUnaccepted is how many connections --probe connect counted
	// served that were still in the accept queue at the end of the hold:
	// the kernel completed their handshakes, the server never took them.
	// 0 with any other probe.
	ServedUnaccepted int64 `json:"served_unaccepted"`
	// TCPExt is the growth of the TcpExt counters over the run;
	// TCPExtRead says they could be read at all.
	TCPExt     limits.TCPExt `json:"tcpext_delta"`
	TCPExtRead bool          `json:"tcpext_read"`
	// ListenerGone says a sample found a listener of the run missing after
	// it had been seen: the server closed it (refused connects are then
	// the server's, not a filter's).
	ListenerGone bool `json:"listener_gone"`
	// Conntrack is the connection-tracking table over the run; null when
	// connection tracking is not loaded here.
	Conntrack *Conntrack `json:"conntrack"`
	// FilterRules are the nftables rules whose counters moved during the
	// run, most packets first; null when they cannot be listed (no nft, not
	// root).
	FilterRules []limits.FilterRule `json:"filter_rules"`
	// Tasks is the machine's threads against kernel.threads-max and this PID
	// namespace's tasks against kernel.pid_max, at the end of the hold; null
	// when not read.
	Tasks *limits.KernelTasks `json:"tasks"`
}

// Conntrack is the netfilter connection-tracking table during a run.
type Conntrack struct {
	Max      int64 `json:"max"`       // nf_conntrack_max
	CountMax int64 `json:"count_max"` // the most entries in the samples (nf_conntrack_count)
	// Refused is the new connections the table refused over the run
	// (drop + early_drop + insert_failed).
	Refused uint64 `json:"refused"`
}

// Latency percentiles of the handshake, in microseconds, over connected attempts.
type Latency struct {
	P50 int64 `json:"p50"`
	P90 int64 `json:"p90"`
	P99 int64 `json:"p99"`
	Max int64 `json:"max"`
}

// Limits is what was read before the run.
type Limits struct {
	Generator limits.NoFile  `json:"generator_nofile"`
	Sysctls   limits.Sysctls `json:"sysctls"`
}

// Generator describes the process that made the connections.
type Generator struct {
	PID       int `json:"pid"`
	Connected int `json:"connected"`
	// SourceAddrs is how many source addresses the sockets were bound to
	// (--source-ips); 0 when the kernel chose.
	SourceAddrs int `json:"source_addrs"`
	// RampProcs is how many generator processes connected at once while
	// the others waited their turn (--ramp-procs); 0 when all did.
	RampProcs int `json:"ramp_procs"`
	// ConnectSpanS is from the first socket() to the last completed handshake.
	ConnectSpanS float64 `json:"connect_span_s"`
}

// Target is the built-in target's own account.
type Target struct {
	PID          int    `json:"pid"`
	NoFileSoft   uint64 `json:"nofile_soft"`
	NoFileHard   uint64 `json:"nofile_hard"`
	Accepted     int64  `json:"accepted"`
	AcceptErrors int64  `json:"accept_errors"`
	OnEMFILE     string `json:"on_emfile"`
	Backlog      int    `json:"backlog"` // 0: net.core.somaxconn
	Shed         int64  `json:"shed"`    // closed at once by the shed policy
	// MaxConns is the application connection cap (0: none), OnMaxConns what
	// the target does there, Capped the connections it closed at the cap.
	MaxConns     int     `json:"max_conns"`
	OnMaxConns   string  `json:"on_max_conns"`
	Capped       int64   `json:"capped"`
	AcceptDelayS float64 `json:"accept_delay_s"`
	// Forwarded and DialErrors are a forwarder's (0 for a target): connections joined to the
	// upstream, and upstream dials that failed.
	Forwarded   int64        `json:"forwarded"`
	DialErrors  int64        `json:"dial_errors"`
	FirstEMFILE *FirstEMFILE `json:"first_emfile"`
}

// FirstEMFILE is the target's state when accept() first failed for lack of descriptors.
type FirstEMFILE struct {
	Errno string `json:"errno"`
	// Phase is "accept", or "dial" when a forwarder's upstream socket failed.
	Phase     string `json:"phase"`
	Accepted  int64  `json:"accepted"`
	Forwarded int64  `json:"forwarded"`
	FDsOpen   int    `json:"fds_open"`
	// SlotsUsed are the open descriptors numbered below the soft limit:
	// connections + len(OtherFDs).
	SlotsUsed     int         `json:"slots_used"`
	OtherFDs      []limits.FD `json:"other_fds"`
	AboveLimitFDs []limits.FD `json:"above_limit_fds"`
}

// Input is everything Build needs.
type Input struct {
	Requested   int
	Target      netip.AddrPort
	Attempts    loadgen.Attempts // every attempt, in the order made
	GeneratorID int
	SourceAddrs int
	RampProcs   int
	Limits      Limits
	TargetInfo  *Target  // nil when the target is not ours
	Targets     []Target // every target process, when several
	Generators  []GeneratorProc
	Forwarder   *Target // nil without run --forward
	// ForwarderFirst: the forwarder's first EMFILE came before the target's.
	ForwarderFirst bool
	Processes      []Process
	Probe          string
	Kernel         *Kernel // nil when not sampled
	Gates          Gates
	Died           *Death // the run's process that died first, or nil
	Payload        int
	MSSAsked       int
	Duration       time.Duration
	Interrupted    bool
	Err            error
}

// Build computes the summary. It does not modify in.Attempts.
func Build(in Input) Summary {
	s := Summary{
		SchemaVersion:   SchemaVersion,
		Interrupted:     in.Interrupted,
		TargetAddr:      addrText(in.Target),
		Requested:       in.Requested,
		Attempted:       len(in.Attempts.Results),
		Outcomes:        map[string]int{},
		DurationS:       in.Duration.Seconds(),
		Limits:          in.Limits,
		Generator:       Generator{PID: in.GeneratorID, SourceAddrs: in.SourceAddrs, RampProcs: in.RampProcs},
		Target:          in.TargetInfo,
		Forwarder:       in.Forwarder,
		Targets:         in.Targets,
		Generators:      in.Generators,
		Kernel:          in.Kernel,
		Probe:           in.Probe,
		TargetProcesses: in.Processes,
		Reasons:         []Reason{},
	}
	if in.Err != nil {
		s.Error = in.Err.Error()
	}
	for _, o := range loadgen.Outcomes() {
		s.Outcomes[o.String()] = 0
	}
	lat := make([]time.Duration, 0, len(in.Attempts.Results))
	var first, last time.Duration = -1, 0
	for i := range in.Attempts.Results {
		r := &in.Attempts.Results[i]
		s.Outcomes[r.Outcome.String()]++
		if r.Outcome == loadgen.Other && s.otherErrno == "" {
			s.otherErrno = ErrnoName(r.Errno)
		}
		if r.Outcome == loadgen.Closed && r.Demoted {
			s.servedClosed++
		}
		if first < 0 {
			first = r.Start
		}
		if r.Connect > 0 {
			lat = append(lat, r.Connect)
			last = max(last, r.Start+r.Connect)
		}
	}
	s.Generator.Connected = len(lat)
	s.latency = NewLatencyHist()
	for _, d := range lat {
		record(s.latency, d)
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		pct := func(p int) int64 { return micros(lat[(len(lat)*p+99)/100-1]) }
		s.ConnectLatencyUS = Latency{P50: pct(50), P90: pct(90), P99: pct(99), Max: micros(lat[len(lat)-1])}
		span := last - first
		s.Generator.ConnectSpanS = span.Seconds()
		if span > 0 {
			s.ConnectRatePerS = float64(len(lat)) / span.Seconds()
		}
	}
	s.Reasons = topReasons(in.Attempts)
	if in.Attempts.Segs != nil {
		s.Segments = segments(in.Attempts.Segs, in.Payload, in.MSSAsked)
	}
	s.FirstLimit, s.FirstLimitAt = firstLimit(in.Attempts.Results, in.TargetInfo, in.Processes)
	if s.FirstLimit == LimitTargetFD && len(in.Targets) > 1 {
		// One target's own count would understate a run spread over several:
		// count the attempts that succeeded before the first that did not.
		_, s.FirstLimitAt = firstLimit(in.Attempts.Results, nil, nil)
	}
	if f := in.Forwarder; f != nil && f.FirstEMFILE != nil && (in.TargetInfo == nil || in.TargetInfo.FirstEMFILE == nil || in.ForwarderFirst) {
		// Two descriptors per connection: the connections it held when it ran out.
		e := f.FirstEMFILE
		s.FirstLimit, s.FirstLimitAt = LimitForwarderFD, int64((e.SlotsUsed-len(e.OtherFDs))/2)
	}
	if s.FirstLimit == LimitTargetClosed {
		// The count means capacity: a server that closes connections it had
		// served to make room for new ones (nginx past worker_connections)
		// fails its first attempt late or never, yet held no more than those
		// still served at the end.
		s.FirstLimitAt = max(s.FirstLimitAt, int64(s.Outcomes[loadgen.Served.String()]))
	}
	s.FirstLimit = byKernelEvidence(s.FirstLimit, in.Kernel)
	if d := in.Died; d != nil {
		// A process that died ended the run whatever the clients saw after.
		s.Died = d
		s.FirstLimit, s.FirstLimitAt = LimitTargetDied, d.After
		if d.Role == "generator" {
			_, s.FirstLimitAt = firstLimit(in.Attempts.Results, nil, nil)
			s.FirstLimit = LimitGeneratorDied
		}
	}
	if p := forwarderAtLimit(in.Processes); p != nil && in.Forwarder == nil && (targetSide[s.FirstLimit] || s.FirstLimit == LimitTargetFD) {
		// A proxy behind the port ran out: both halves of each connection count.
		s.FirstLimit, s.FirstLimitAt = LimitForwarderFD, int64(p.ConnsAccepted)
	}
	if limit := byProcessEvidence(s.FirstLimit, in.Processes, in.Kernel); limit != s.FirstLimit {
		s.FirstLimit = limit
		switch {
		case limit == LimitTargetMemory && in.Died == nil:
			// A killed server takes every connection it held with it: those
			// it had taken, not the first that failed, are what it could hold.
			s.FirstLimitAt = held(in.Attempts.Results)
		case limit == LimitTargetTask:
			// As for target-closed: a task freed by a connection that ended
			// serves a later one.
			s.FirstLimitAt = max(s.FirstLimitAt, int64(s.Outcomes[loadgen.Served.String()]))
		}
	}
	s.FirstLimitSetting, s.FirstLimitValue, s.FirstLimitFix = s.limitDetail()
	s.Gates = in.Gates.Check(s)
	return s
}

// firstLimit names the limit the run met first and the count at which it
// did: the target's accepted connections at its first EMFILE, or else the
// number of attempts that had succeeded before the first that did not. A
// target-side failure while a process behind the target was seen out of
// descriptors is that process's fd limit.
func firstLimit(results []loadgen.Result, t *Target, procs []Process) (string, int64) {
	if t != nil && t.FirstEMFILE != nil {
		return LimitTargetFD, t.FirstEMFILE.Accepted
	}
	for i := range results {
		// Served and Pending name no limit: "none" means every attempt was served.
		v, ok := limitOf[results[i].Outcome]
		if !ok {
			continue
		}
		if targetSide[v] && atLimit(procs) != nil {
			v = LimitTargetFD
		}
		return v, int64(i)
	}
	return LimitNone, int64(len(results))
}

// byKernelEvidence names what the clients' outcome alone would misname:
// refused connects while the listener was there all along are a filter's
// resets, not "nothing listens"; connect timeouts without a listen overflow,
// with room in the queue, are SYNs lost before the listener (a full
// conntrack table, or a filter's drop), not a full accept queue.
func byKernelEvidence(limit string, k *Kernel) string {
	if k == nil {
		return limit
	}
	seen := k.ListenBacklog >= 0
	switch limit {
	case LimitRefused:
		if seen && !k.ListenerGone {
			return LimitPacketFilter
		}
	case LimitAcceptQueueFull:
		noOverflow := k.TCPExtRead && k.TCPExt.ListenOverflows == 0 && k.TCPExt.ListenDrops == 0
		roomy := seen && k.AcceptQueueMax < k.ListenBacklog+1
		if ct := k.Conntrack; ct != nil && (ct.Refused > 0 || ct.Max > 0 && ct.CountMax >= ct.Max) && (noOverflow || !k.TCPExtRead) {
			return LimitConntrackFull
		}
		if noOverflow && roomy {
			return LimitPacketFilter
		}
	}
	return limit
}

// byProcessEvidence names a target stopped by its cgroup: the OOM killer
// killed a process behind the port (whatever the clients saw then), or its
// tasks were refused at pids.max while the clients saw the target fail (a
// thread-per-connection server that cannot start a thread closes the
// connection: no application cap).
func byProcessEvidence(limit string, procs []Process, k *Kernel) string {
	if limit == LimitGeneratorDied || clientSide[limit] {
		return limit
	}
	for _, p := range procs {
		if c := p.Cgroup; c != nil && c.OOMKills > 0 {
			return LimitTargetMemory
		}
	}
	for _, p := range procs {
		if taskLimited(&p) && limit != LimitNone {
			return LimitTargetTask
		}
	}
	if kt := kernelTasks(k); kt != nil && (kt.AtThreadsMax() || kt.AtPidMax()) && targetFailed[limit] {
		return LimitTargetTask
	}
	return limit
}

// targetFailed are the verdicts of a target that took connections and then
// failed them, as a server that cannot fork or start a thread does.
var targetFailed = map[string]bool{LimitTargetClosed: true, LimitTargetNotAccepting: true, LimitOtherError: true, LimitCorruptReply: true}

// kernelTasks is k's task reading, or nil.
func kernelTasks(k *Kernel) *limits.KernelTasks {
	if k == nil {
		return nil
	}
	return k.Tasks
}

// held counts the attempts that got a connection the target took: still
// open, waiting, or closed after it connected.
func held(results []loadgen.Result) int64 {
	var n int64
	for i := range results {
		switch r := &results[i]; r.Outcome {
		case loadgen.Served, loadgen.Queued, loadgen.Closed:
			if r.Connect > 0 {
				n++
			}
		}
	}
	return n
}

// taskLimited says whether p could not start tasks: refused at its cgroup's
// pids.max, or its user at RLIMIT_NPROC.
func taskLimited(p *Process) bool {
	return p.Cgroup != nil && p.Cgroup.PidsRefused > 0 || p.NProc != nil && p.NProc.AtLimit
}

// clientSide are the verdicts of the generator's own limits.
var clientSide = map[string]bool{LimitClientFD: true, LimitSystemFD: true, LimitEphemeralPorts: true}

// targetSide are the verdicts a target out of descriptors can cause.
var targetSide = map[string]bool{LimitTargetNotAccepting: true, LimitAcceptQueueFull: true, LimitTargetClosed: true}

// atLimit is the first process seen at its descriptor limit, or nil.
func atLimit(procs []Process) *Process {
	for i := range procs {
		if procs[i].AtLimit {
			return &procs[i]
		}
	}
	return nil
}

// topReasons counts what the target said, most frequent first, at most five.
func topReasons(a loadgen.Attempts) []Reason {
	type key struct{ o, r string }
	n := map[key]int{}
	for i, r := range a.Reasons {
		if r != "" && int(i) < len(a.Results) {
			n[key{a.Results[i].Outcome.String(), r}]++
		}
	}
	out := make([]Reason, 0, len(n))
	for k, c := range n {
		out = append(out, Reason{Outcome: k.o, Reason: k.r, Count: c})
	}
	slices.SortFunc(out, func(a, b Reason) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Reason, b.Reason)
	})
	return out[:min(len(out), 5)]
}

// limitOf is the limit an outcome points to when the target gave no evidence.
var limitOf = map[loadgen.Outcome]string{
	loadgen.Queued:          LimitTargetNotAccepting,
	loadgen.ConnectTimeout:  LimitAcceptQueueFull,
	loadgen.Closed:          LimitTargetClosed,
	loadgen.Refused:         LimitRefused,
	loadgen.ClientFDLimit:   LimitClientFD,
	loadgen.SystemFDLimit:   LimitSystemFD,
	loadgen.NoEphemeralPort: LimitEphemeralPorts,
	loadgen.Corrupt:         LimitCorruptReply,
	loadgen.Other:           LimitOtherError,
	loadgen.Lost:            LimitGeneratorDied,
}

// WriteJSON writes the summary as indented JSON.
func WriteJSON(w io.Writer, s Summary) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// WriteJSONLine writes the summary as one line of JSON: a shard's, last
// on stdout, where kubectl logs collects it.
func WriteJSONLine(w io.Writer, s Summary) error {
	return json.NewEncoder(w).Encode(s)
}

func addrText(a netip.AddrPort) string {
	if !a.IsValid() {
		return "" // the run stopped before it had a target
	}
	return a.String()
}

func segments(segs []loadgen.SegInfo, payload, asked int) *Segments {
	out := &Segments{PayloadBytes: payload, MSSAsked: asked}
	mss, sout, sin := map[int]int{}, map[int]int{}, map[int]int{}
	for _, sg := range segs {
		if sg.MSS == 0 {
			continue // no reading: the probe was not answered
		}
		out.Connections++
		out.Retrans += int64(sg.Retrans)
		mss[int(sg.MSS)]++
		sout[int(sg.DataSegsOut)]++
		sin[int(sg.DataSegsIn)]++
	}
	out.MSSUsed, out.DataSegsOut, out.DataSegsIn = mode(mss), mode(sout), mode(sin)
	out.Split = split(payload, out.MSSUsed)
	return out
}

// mode is the most common value (the smallest on a tie), 0 for none.
func mode(n map[int]int) int {
	best, count := 0, 0
	for v, c := range n {
		if c > count || c == count && v < best {
			best, count = v, c
		}
	}
	return best
}

// split writes payload cut into segments of mss: "1448+1448+656", or
// "1448×34+712" when long.
func split(payload, mss int) string {
	if mss <= 0 || payload <= 0 {
		return ""
	}
	full, rest := payload/mss, payload%mss
	var parts []string
	if full > 4 {
		parts = append(parts, fmt.Sprintf("%d×%d", mss, full))
	} else {
		for range full {
			parts = append(parts, strconv.Itoa(mss))
		}
	}
	if rest > 0 {
		parts = append(parts, strconv.Itoa(rest))
	}
	return strings.Join(parts, "+")
}
