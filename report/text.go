package report

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/connlimit/connlimit/limits"
	"github.com/connlimit/connlimit/loadgen"
)

var outcomeMeaning = map[string]string{
	"served":            "the probe was answered (greeting, echo, HTTP status) and the connection held",
	"queued":            "connected, no answer to the probe: waiting in the target's accept queue",
	"connect-timeout":   "handshake not completed in time: SYNs unanswered",
	"refused":           "RST to the SYN: nothing listening",
	"closed":            "EOF or RST instead of an answer or during the hold; a refusal (503) too",
	"corrupt":           "the echo came back different from what was sent",
	"client-fd-limit":   "EMFILE in the generator: its own RLIMIT_NOFILE",
	"system-fd-limit":   "ENFILE: the machine's fs.file-max",
	"no-ephemeral-port": "EADDRNOTAVAIL: no local port left for this address pair",
	"other":             "any other error; the CSV keeps the errno",
	"lost":              "made by a generator process that died: its details died with it",
}

// WriteText writes the summary in plain words: the limit first, then the
// figures behind it.
func WriteText(w io.Writer, s Summary) error {
	b := &strings.Builder{}
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	who := "an external target"
	if t := s.Target; t != nil {
		who = fmt.Sprintf("built-in target, pid %d, soft limit %d, hard %d", t.PID, t.NoFileSoft, t.NoFileHard)
		if n := len(s.Targets); n > 1 {
			who = fmt.Sprintf("%d built-in target processes on ports of their own, soft limit %d each", n, t.NoFileSoft)
		}
	}
	if n := len(s.Generators); n > 1 {
		who += fmt.Sprintf("; %d generator processes", n)
	}
	if s.Probe != "" {
		who += ", probe " + s.Probe
	}
	if s.TargetAddr == "" {
		p("connlimit: %d connections asked; the run stopped before its target was ready\n", s.Requested)
	} else {
		p("connlimit: %d connections asked of %s (%s)\n", s.Requested, s.TargetAddr, who)
	}
	if s.Interrupted {
		p("INTERRUPTED: the run was stopped after %d of %d attempts; every attempt made is counted below.\n", s.Attempted, s.Requested)
	}
	if s.Error != "" {
		p("ERROR: %s\n", s.Error)
	}
	p("\nfirst limit: %s", s.FirstLimit)
	if s.FirstLimit != LimitNone {
		p(" at %d connections", s.FirstLimitAt)
	}
	p("\n")
	explain(p, s)
	queuedAsServed(p, s)
	if s.FirstLimitSetting != "" {
		p("  setting: %s = %s\n", s.FirstLimitSetting, s.FirstLimitValue)
		p("  to move it: %s\n", s.FirstLimitFix)
	}

	writeForwarder(p, s)
	writeProcesses(p, s)
	writeSegments(p, s.Segments, s.Target != nil)
	writeKernel(p, s.Kernel)

	p("\noutcomes (%d attempts):\n", s.Attempted)
	for _, o := range loadgen.Outcomes() {
		name := o.String()
		p("  %-18s %8d  %s\n", name, s.Outcomes[name], outcomeMeaning[name])
	}
	l := s.ConnectLatencyUS
	p("\nconnect latency: p50 %s  p90 %s  p99 %s  max %s\n", us(l.P50), us(l.P90), us(l.P99), us(l.Max))
	p("connect rate: %.0f/s (%d handshakes in %s); run took %s\n", s.ConnectRatePerS, s.Generator.Connected,
		dur(s.Generator.ConnectSpanS), dur(s.DurationS))
	if s.Merge != nil {
		writeShards(p, s)
	} else {
		g := s.Limits.Generator
		p("generator: pid %d, RLIMIT_NOFILE inherited %s, soft %d, hard %d\n", s.Generator.PID, g.InheritedText(), g.Soft, g.Hard)
	}
	if len(s.Gates) > 0 {
		p("\ngates:\n")
		for _, r := range s.Gates {
			verdict := "PASS"
			if !r.Passed {
				verdict = "FAIL"
			}
			p("  %s %s: want %s, got %s\n", verdict, r.Gate, r.Bound, r.Got)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// queuedAsServed warns that --probe connect counted as served connections
// the server had not taken when the hold ended: the kernel completes a
// handshake for a listener that does not accept (a server out of
// descriptors, HAProxy at its maxconn, a stalled or slow accept loop).
func queuedAsServed(p func(string, ...any), s Summary) {
	k := s.Kernel
	if k == nil || k.ServedUnaccepted <= 0 {
		return
	}
	p("  %d of the served connections were still in the target's accept queue when the hold ended: it never took them\n", k.ServedUnaccepted)
	p("  (out of descriptors, at an application cap such as HAProxy's maxconn, or accepting slowly). --probe connect\n")
	p("  counts them served once the kernel completes their handshake; --probe accept asks the kernel which\n")
	p("  connections the target took, and counts the others queued.\n")
}

func explain(p func(string, ...any), s Summary) {
	t := s.Target
	switch {
	case s.FirstLimit == LimitTargetFD && (t == nil || t.FirstEMFILE == nil) && atLimit(s.TargetProcesses) != nil:
		pr := atLimit(s.TargetProcesses)
		p("  %s, pid %d: %d of %d descriptor slots used (soft limit %d, %d open in all): accept() fails with EMFILE there.\n",
			pr.Label(), pr.PID, pr.SlotsUsedMax, pr.NoFileSoft, pr.NoFileSoft, pr.FDsMax)
		p("  After %d connections the clients saw the effect: connections the target could not take.\n", s.FirstLimitAt)
	case s.FirstLimit == LimitTargetFD && t != nil && t.FirstEMFILE != nil:
		e := t.FirstEMFILE
		others := len(e.OtherFDs)
		if n := len(s.Targets); n > 1 {
			out := 0
			for _, x := range s.Targets {
				if x.FirstEMFILE != nil {
					out++
				}
			}
			p("  %d of the %d target processes ran out of descriptors; the first of them:\n", out, n)
		}
		p("  The target (pid %d, soft limit %d) accepted %d connections; accept() then failed with %s:\n",
			t.PID, t.NoFileSoft, e.Accepted, e.Errno)
		p("  %d of %d descriptors in use = %d connections + %d others (%s).\n",
			e.SlotsUsed, t.NoFileSoft, e.SlotsUsed-others, others, otherKinds(e.OtherFDs))
		if len(e.AboveLimitFDs) > 0 {
			p("  Not counted: inherited descriptors numbered at or above the limit take no slot (%s).\n", fdNums(e.AboveLimitFDs))
		}
		switch t.OnEMFILE {
		case "shed":
			p("  accept() failed %d times in all; policy shed: %d connections were accepted with the spare descriptor and closed at once (clients see closed).\n", t.AcceptErrors, t.Shed)
		case "stop":
			p("  policy stop: the target closed its listener at the first failure; later connects are refused, queued ones reset.\n")
		default:
			p("  accept() failed %d times in all; the target backed off 5 ms doubling to 1 s between tries.\n", t.AcceptErrors)
		}
	case s.FirstLimit == LimitClientFD:
		g := s.Limits.Generator
		p("  The generator (pid %d, soft limit %d) ran out of descriptors first: socket() failed with EMFILE after %d connections;\n",
			s.Generator.PID, g.Soft, s.FirstLimitAt)
		if own := int64(g.Soft) - s.FirstLimitAt; own > 0 {
			p("  the other %d descriptors were its own (stdio, runtime, its samplers, the target's pipe).\n", own)
		}
		if t != nil {
			p("  The target had room: it accepted %d with a soft limit of %d. This limit is the client's, not the server's:\n", t.Accepted, t.NoFileSoft)
			p("  a load tester that reports \"too many open files\" may be measuring itself.\n")
		}
	case s.FirstLimit == LimitEphemeralPorts:
		r := s.Limits.Sysctls.PortRange
		p("  connect() failed with EADDRNOTAVAIL after %d connections: each connection to %s needs its own local port,\n", s.FirstLimitAt, s.TargetAddr)
		if n := s.Generator.SourceAddrs; n > 1 {
			p("  and net.ipv4.ip_local_port_range %d-%d holds %d per source address: with %d source addresses, %d.\n",
				r.Low, r.High, r.Count(), n, n*r.Count())
			p("  The target never saw these attempts.\n")
		} else {
			p("  and net.ipv4.ip_local_port_range %d-%d holds %d. The target never saw these attempts.\n", r.Low, r.High, r.Count())
		}
	case s.FirstLimit == LimitNone && s.Attempted < s.Requested:
		p("  no limit was met in the %d attempts made before the run stopped (%d asked).\n", s.Attempted, s.Requested)
	case s.FirstLimit == LimitNone:
		p("  every one of the %d connections asked for was served and held.\n", s.Requested)
	case s.FirstLimit == LimitTargetNotAccepting:
		p("  After %d connections the target stopped calling accept() with descriptors to spare (no EMFILE):\n", s.FirstLimitAt)
		switch ps := procsText(s.TargetProcesses); {
		case t != nil && t.MaxConns > 0:
			p("  it reached its connection cap of %d (--max-conns; at the cap: %s).\n", t.MaxConns, t.OnMaxConns)
		case ps != "":
			p("  the process has descriptors to spare (%s):\n  an application connection cap, or an accept loop that stalled.\n", ps)
		default:
			p("  an application connection cap, or an accept loop that stalled.\n")
		}
	case s.FirstLimit == LimitTargetClosed:
		switch {
		case t != nil && t.MaxConns > 0 && t.OnMaxConns == "stop":
			p("  After %d connections the target closed its listener at its connection cap of %d (--max-conns; at the cap: stop):\n", s.FirstLimitAt, t.MaxConns)
			p("  the kernel reset the connections waiting in its accept queue (closed); later connects are refused.\n")
		case t != nil && t.MaxConns > 0:
			p("  After %d connections the target accepted connections and closed them at once: its connection cap of %d\n", s.FirstLimitAt, t.MaxConns)
			p("  (--max-conns; at the cap: %s) closed %d.\n", t.OnMaxConns, t.Capped)
		case s.servedClosed > 0:
			p("  The target held %d connections at once: it closed %d connections it had already served as new ones came,\n", s.FirstLimitAt, s.servedClosed)
			p("  reusing their slots (nginx past worker_connections closes idle keep-alive connections).\n")
		default:
			p("  After %d connections the target (or the kernel for it) closed or reset connections instead of serving them.\n", s.FirstLimitAt)
			if ps := procsText(s.TargetProcesses); ps != "" {
				p("  It had descriptors to spare (%s): an application connection cap.\n", ps)
			}
		}
		s.saidBeforeClosing(p)
	case s.FirstLimit == LimitRefused:
		p("  After %d connections connects were refused (RST to the SYN): nothing listened at %s any more", s.FirstLimitAt, s.TargetAddr)
		if t != nil && t.MaxConns > 0 && t.OnMaxConns == "stop" {
			p(": the target closed its listener at its connection cap of %d", t.MaxConns)
		}
		p(".\n")
	case s.FirstLimit == LimitAcceptQueueFull:
		p("  After %d connections connects timed out while the target still had descriptors: it accepted more slowly than\n", s.FirstLimitAt)
		p("  connections arrived, the accept queue filled, and the kernel dropped the SYNs that found it full")
		if t != nil && t.AcceptDelayS > 0 {
			p(" (the target spends %s before each accept: --accept-delay)", dur(t.AcceptDelayS))
		}
		p(".\n")
	case s.FirstLimit == LimitForwarderFD && s.Forwarder != nil && s.Forwarder.FirstEMFILE != nil:
		f, e := s.Forwarder, s.Forwarder.FirstEMFILE
		others := len(e.OtherFDs)
		call := "accept()"
		if e.Phase == "dial" {
			call = "socket() for the connection to the target"
		}
		p("  The forwarder (pid %d, soft limit %d) ran out first: its %s failed with %s,\n", f.PID, f.NoFileSoft, call, e.Errno)
		p("  %d of %d descriptors in use = %d for connections + %d others (%s).\n", e.SlotsUsed, f.NoFileSoft, e.SlotsUsed-others, others, otherKinds(e.OtherFDs))
		p("  Each connection costs it two, the accepted one and the one it dialed to the target: %d connections.\n", s.FirstLimitAt)
		if t != nil && t.FirstEMFILE == nil {
			p("  The target behind it, soft limit %d, never ran out: it held %d. With equal limits a forwarder runs out at about half.\n", t.NoFileSoft, t.Accepted)
		}
	case s.FirstLimit == LimitCorruptReply:
		p("  After %d connections a reply came back different from what was sent: %d of %d attempts got wrong bytes.\n",
			s.FirstLimitAt, s.Outcomes["corrupt"], s.Attempted)
		if r := s.reasonFor("corrupt"); r != "" {
			p("  The first: %s.\n", r)
		}
		p("  A server that answers wrongly is failing, however many connections it takes.\n")
	case s.FirstLimit == LimitOtherError:
		p("  After %d connections attempts failed with an error outside the limits connlimit knows (%d, the first %s):\n",
			s.FirstLimitAt, s.Outcomes["other"], s.otherErrno)
		p("  the --csv report has each one's errno.\n")
		for _, r := range s.Reasons {
			if r.Outcome == "other" {
				p("  %d of them: %s.\n", r.Count, r.Reason)
			}
		}
	case s.FirstLimit == LimitTargetDied && s.Died != nil:
		p("  The %s.\n", s.Died.Text())
		p("  The connections it held died with it: later attempts were refused or reset, not limited.\n")
	case s.FirstLimit == LimitGeneratorDied && s.Died != nil:
		p("  The %s: the run stopped.\n", s.Died.Text())
		if s.Died.Lost > 0 {
			p("  Its %d attempts are counted as lost: their details (times, ports, errnos) died with it.\n", s.Died.Lost)
		}
	case s.FirstLimit == LimitPacketFilter && s.Outcomes["refused"] > 0:
		p("  After %d connections connects were reset (RST to the SYN) while the listener at %s was there, with room in its queue:\n", s.FirstLimitAt, s.TargetAddr)
		p("  a packet filter answered for it (a REJECT with tcp reset, or a per-source cap).\n")
	case s.FirstLimit == LimitPacketFilter:
		p("  After %d connections connects timed out while the listener at %s had room in its queue and no SYN\n", s.FirstLimitAt, s.TargetAddr)
		p("  overflowed it: they were dropped before the listener, by a packet filter (a DROP, or a per-source cap).\n")
	case s.FirstLimit == LimitConntrackFull:
		p("  After %d connections connects timed out: the connection-tracking table was full, so netfilter dropped new SYNs\n", s.FirstLimitAt)
		if ct := s.Kernel.Conntrack; ct != nil {
			p("  before any listener saw them (%d of %d entries at most; %d connections refused an entry).\n", ct.CountMax, ct.Max, ct.Refused)
		}
	case s.FirstLimit == LimitTargetTask:
		p("  After %d connections the target failed them: it could not start the process or thread it needs per connection\n", s.FirstLimitAt)
		if pr := limitedBy(s.TargetProcesses, func(c *ProcessCgroup) bool { return c.PidsRefused > 0 }); pr != nil {
			p("  (%s, pid %d: pids.max %d, %d refused during the run). It had descriptors to spare: not an application cap.\n",
				pr.Label(), pr.PID, pr.Cgroup.PidsMax, pr.Cgroup.PidsRefused)
		} else if pr := nprocLimited(s.TargetProcesses); pr != nil {
			p("  (%s, pid %d: its user, uid %d, has %d tasks at RLIMIT_NPROC %d). It had descriptors to spare: not an application cap.\n",
				pr.Label(), pr.PID, pr.NProc.UID, pr.NProc.UserTasks, pr.NProc.Soft)
		} else if kt := kernelTasks(s.Kernel); kt != nil && kt.AtPidMax() {
			p("  (its PID namespace has %d tasks of kernel.pid_max %d: no PID left for the next one).\n", kt.Pids, kt.PidMax)
		} else if kt != nil && kt.AtThreadsMax() {
			p("  (the machine has %d threads of kernel.threads-max %d).\n", kt.Threads, kt.ThreadsMax)
		}
		s.saidBeforeClosing(p)
	case s.FirstLimit == LimitTargetMemory:
		p("  After %d connections the OOM killer killed the target's process in its memory cgroup:\n", s.FirstLimitAt)
		if pr := limitedBy(s.TargetProcesses, func(c *ProcessCgroup) bool { return c.OOMKills > 0 }); pr != nil {
			p("  %s, pid %d, limit %s, %d OOM kills; the connections it held died with it.\n", pr.Label(), pr.PID, mib(pr.Cgroup.MemoryLimit), pr.Cgroup.OOMKills)
		}
	case s.FirstLimit == LimitForwarderFD && forwarderAtLimit(s.TargetProcesses) != nil:
		pr := forwarderAtLimit(s.TargetProcesses)
		p("  %s, pid %d, is a forwarder at its descriptor limit: it holds a connection to %s for each one it accepted,\n", pr.Label(), pr.PID, pr.DialedTo)
		p("  so %d connections cost it %d descriptors (%d accepted + %d dialed), %d of %d with its own: too few left for another pair.\n",
			pr.ConnsAccepted, pr.ConnsAccepted+pr.ConnsDialed, pr.ConnsAccepted, pr.ConnsDialed, pr.SlotsUsedMax, pr.NoFileSoft)
	case s.FirstLimit == LimitSystemFD:
		p("  After %d connections socket() failed with ENFILE: the whole machine is out of file handles (fs.file-max %d),\n",
			s.FirstLimitAt, s.Limits.Sysctls.FileMax)
		p("  not one process: every process that opens a file now fails too.\n")
	}
	queueStory(p, s)
}

// queueStory tells what the accept queue did, with the kernel's counters as evidence.
func queueStory(p func(string, ...any), s Summary) {
	queued, timedOut := s.Outcomes["queued"], s.Outcomes["connect-timeout"]
	k := s.Kernel
	if queued > 0 {
		p("  %d connections completed the handshake and waited in the accept queue", queued)
		if k != nil && k.ListenBacklog >= 0 {
			p(" (backlog %d + 1)", k.ListenBacklog)
		}
		p(": the kernel answers for a listener that does not accept, and the client cannot tell.\n")
	}
	if timedOut == 0 {
		return
	}
	if k == nil || k.Unavailable != "" && k.TCPExt == (limits.TCPExt{}) {
		p("  %d connects timed out: their SYNs went unanswered.\n", timedOut)
		return
	}
	if o := k.TCPExt.ListenOverflows; o > 0 {
		p("  %d connects timed out: the queue was full and the kernel dropped their SYNs (ListenOverflows +%d, retransmits included).\n", timedOut, o)
		return
	}
	p("  %d connects timed out but ListenOverflows did not move: the SYNs were lost before the listener", timedOut)
	if d := k.TCPExt.TCPReqQFullDrop; d > 0 {
		p(" (the SYN queue was full: TCPReqQFullDrop +%d)", d)
	}
	p(".\n")
}

// writeKernel shows the kernel's view of the listener.
func writeKernel(p func(string, ...any), k *Kernel) {
	if k == nil {
		return
	}
	if k.Exact {
		p("\nkernel's view (private network namespace: the counters are this run's alone):\n")
	} else {
		p("\nkernel's view (%s network namespace: other traffic moves these counters too, so they may not be exact):\n", k.Namespace)
	}
	if k.ListenBacklog >= 0 {
		end := "the listener was gone at the end of the hold"
		if k.AcceptQueueEnd >= 0 {
			end = fmt.Sprintf("%d at the end of the hold", k.AcceptQueueEnd)
		}
		if k.Listeners > 1 {
			p("  %d listeners: backlog %d each, so each accept queue holds %d; longest total in the samples %d, %s\n",
				k.Listeners, k.ListenBacklog, k.ListenBacklog+1, k.AcceptQueueMax, end)
		} else {
			p("  listener: backlog %d, so the accept queue holds %d; longest queue in the samples %d, %s\n",
				k.ListenBacklog, k.ListenBacklog+1, k.AcceptQueueMax, end)
		}
	} else {
		p("  listener: not seen by sock_diag while sampling (closed early, or in another network namespace)\n")
	}
	parts := []string{}
	for _, c := range k.TCPExt.Fields() {
		parts = append(parts, fmt.Sprintf("%s +%d", c.Name, c.Value))
	}
	p("  TcpExt growth: %s\n", strings.Join(parts, ", "))
	if k.Unavailable != "" {
		p("  unavailable: %s\n", k.Unavailable)
	}
}

// otherKinds groups the non-connection descriptors: "3 stdio, 1 listener, ...".
func otherKinds(fds []limits.FD) string {
	var order []string
	n := map[string]int{}
	for _, fd := range fds {
		if n[fd.Kind] == 0 {
			order = append(order, fd.Kind)
		}
		n[fd.Kind]++
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = fmt.Sprintf("%d %s", n[k], k)
	}
	return strings.Join(parts, ", ")
}

func fdNums(fds []limits.FD) string {
	parts := make([]string, len(fds))
	for i, fd := range fds {
		parts[i] = fmt.Sprintf("fd %d", fd.Num)
	}
	return strings.Join(parts, ", ")
}

func us(v int64) string { return (time.Duration(v) * time.Microsecond).String() }

func dur(sec float64) string {
	return time.Duration(sec * float64(time.Second)).Round(time.Millisecond).String()
}

// writeProcesses shows the processes behind the target's listener.
func writeProcesses(p func(string, ...any), s Summary) {
	if len(s.TargetProcesses) == 0 {
		return
	}
	p("\nprocesses behind %s:\n", s.TargetAddr)
	for _, pr := range s.TargetProcesses {
		if !pr.Readable {
			p("  pid %d %s (%s): %s\n", pr.PID, pr.Label(), pr.FoundBy, pr.Note)
			continue
		}
		mark := ""
		if pr.AtLimit {
			mark = "  AT ITS DESCRIPTOR LIMIT"
		}
		p("  pid %d %s (%s): RLIMIT_NOFILE soft %d, hard %d; at most %d descriptors open, %d at the end of the hold%s\n",
			pr.PID, pr.Label(), pr.FoundBy, pr.NoFileSoft, pr.NoFileHard, pr.FDsMax, pr.FDsEnd, mark)
	}
}

// writeSegments tells how the payload left: "5000 bytes → 4 segments (1448+...)".
func writeSegments(p func(string, ...any), sg *Segments, builtin bool) {
	if sg == nil {
		return
	}
	if sg.Connections == 0 {
		p("\nsegments: no connection got its %d-byte echo back, so there is no TCP_INFO to show\n", sg.PayloadBytes)
		return
	}
	p("\nsegments (TCP_INFO of %d connections):\n", sg.Connections)
	p("  %d bytes → %d segments (%s) out, %d segments back", sg.PayloadBytes, sg.DataSegsOut, sg.Split, sg.DataSegsIn)
	if builtin {
		p(" (one is the built-in target's greeting)")
	}
	p("; %d retransmitted\n", sg.Retrans)
	switch {
	case sg.MSSAsked > 0 && sg.MSSAsked != sg.MSSUsed:
		p("  MSS asked %d (--mss), %d carried per segment: the other %d bytes of each go to TCP options (timestamps)\n",
			sg.MSSAsked, sg.MSSUsed, sg.MSSAsked-sg.MSSUsed)
	case sg.MSSAsked > 0:
		p("  MSS asked %d (--mss), %d carried per segment\n", sg.MSSAsked, sg.MSSUsed)
	default:
		p("  %d bytes carried per segment (loopback's MTU is 64 KiB: set --mss to see a smaller one)\n", sg.MSSUsed)
	}
}

// writeForwarder sets the forwarder's and the target's descriptors side by side.
func writeForwarder(p func(string, ...any), s Summary) {
	f, t := s.Forwarder, s.Target
	if f == nil || t == nil {
		return
	}
	at := func(x *Target) string {
		if x.FirstEMFILE == nil {
			return "never"
		}
		e := x.FirstEMFILE
		if x == f {
			return fmt.Sprintf("%s holding %d", e.Errno, (e.SlotsUsed-len(e.OtherFDs))/2)
		}
		return fmt.Sprintf("%s holding %d", e.Errno, e.Accepted)
	}
	p("\ndescriptors, side by side:      %-24s %s\n", fmt.Sprintf("forwarder (pid %d)", f.PID), fmt.Sprintf("target (pid %d)", t.PID))
	p("  soft limit                    %-24d %d\n", f.NoFileSoft, t.NoFileSoft)
	p("  connections accepted          %-24d %d\n", f.Accepted, t.Accepted)
	p("  joined to the target          %-24d %s\n", f.Forwarded, "-")
	p("  descriptors per connection    %-24s %s\n", "2 (accepted + dialed)", "1")
	p("  first EMFILE                  %-24s %s\n", at(f), at(t))
	p("  upstream dials that failed    %d\n", f.DialErrors)
}

// saidBeforeClosing quotes what the target said as it closed connections.
func (s *Summary) saidBeforeClosing(p func(string, ...any)) {
	for _, r := range s.Reasons {
		if r.Outcome == "closed" {
			p("  The target said %q before closing %d connections.\n", r.Reason, r.Count)
		}
	}
}

// writeShards is a merged run's line per shard, and how far apart their
// ramps began.
func writeShards(p func(string, ...any), s Summary) {
	m := s.Merge
	p("\nmerged from %d shards (run %s); percentiles from their merged histograms (within %.1f%%):\n", m.Count, m.Run, 100*m.LatencyPrecision)
	p("  %5s  %-20s %9s %9s %9s  %-22s %10s\n", "shard", "host", "attempted", "served", "failed", "first limit", "start +ms")
	for _, r := range s.Shards {
		failed := r.Attempted - r.Outcomes["served"] - r.Outcomes["queued"]
		p("  %5d  %-20s %9d %9d %9d  %-22s %10.1f\n", r.Index, trunc(r.Host, 20), r.Attempted, r.Outcomes["served"], failed,
			fmt.Sprintf("%s at %d", r.FirstLimit, r.FirstLimitAt), 1000*r.StartOffsetS)
	}
	p("  ramps began within %.1f ms of each other (clock skew between hosts and late shards together)\n", 1000*m.StartSpreadS)
	if m.ReleasedEarly != "" {
		p("  WARNING: %s\n", m.ReleasedEarly)
	}
	for _, r := range s.Shards {
		if r.LateS > 0 {
			p("  shard %d started %.1f ms after --start-at\n", r.Index, 1000*r.LateS)
		}
	}
}
