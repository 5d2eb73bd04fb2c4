package report

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/connlimit/connlimit/limits"
)

// InspectSchemaVersion is the inspect JSON's version: it changes when a key
// is removed or retyped, not when one is added.
const InspectSchemaVersion = 1

// Inspection is what connlimit inspect read of a live server, without
// sending it a packet: the processes behind its listener, the listener, the
// machine, and the nearest limit.
type Inspection struct {
	SchemaVersion int    `json:"schema_version"`
	Target        string `json:"target"` // the listener's address, "" with --pid alone
	// Headroom is the nearest limit: the fewest more connections any
	// limit lets in, with its verdict word, setting and fix as run names
	// them; null when no limit could be read.
	Headroom  *Headroom          `json:"headroom"`
	Processes []InspectedProcess `json:"processes"`
	Listener  *InspectedListener `json:"listener"`
	Machine   InspectedMachine   `json:"machine"`
	// NotRead names each reading that failed, and why.
	NotRead []string `json:"not_read"`
}

// Headroom is one limit's room for more connections.
type Headroom struct {
	Limit       string `json:"limit"` // a verdict word of run: target-fd-limit, forwarder-fd-limit, target-task-limit, target-closed, system-fd-limit, conntrack-full, ephemeral-ports
	PID         int    `json:"pid"`   // the process it is about; 0 for the machine's
	Connections int64  `json:"connections"`
	Setting     string `json:"setting"`
	Value       string `json:"value"`
	Fix         string `json:"fix"`
}

// InspectedProcess is one process behind the listener.
type InspectedProcess struct {
	PID        int            `json:"pid"`
	Name       string         `json:"name"`
	Cmdline    string         `json:"cmdline"`
	State      string         `json:"state"` // R, S, D, T, Z … as /proc/PID/stat has it
	Unit       string         `json:"unit,omitempty"`
	NoFileSoft uint64         `json:"nofile_soft"`
	NoFileHard uint64         `json:"nofile_hard"`
	FDs        int            `json:"fds"`
	FDsByKind  map[string]int `json:"fds_by_kind"` // tcp-accepted, tcp-dialed, tcp-listening, tcp-other, udp, unix, socket-other, file, pipe, epoll, eventfd, other
	// Forwarder: it holds a dialed connection for about every accepted
	// one, so each more connection costs it two descriptors.
	Forwarder bool `json:"forwarder"`
	// Headroom is the connections it can still take before its nearest
	// own limit (descriptors, or tasks when it spends one per connection).
	Headroom   int64  `json:"headroom"`
	HeadroomBy string `json:"headroom_by"` // the verdict word of that limit
	Threads    int    `json:"threads"`
	// UID, NProcSoft and UserTasks: its real user's tasks against its
	// RLIMIT_NPROC (root is exempt; ^0 is unlimited).
	UID       int    `json:"uid"`
	NProcSoft uint64 `json:"nproc_soft"`
	UserTasks int    `json:"user_tasks"`
	// Its cgroup's figures; -1 unknown or no limit.
	PidsMax     int64 `json:"pids_max"`
	PidsCurrent int64 `json:"pids_current"`
	MemoryLimit int64 `json:"memory_limit_bytes"`
	MemoryUsage int64 `json:"memory_usage_bytes"`
	// ServerCap is the server's own cap on clients, for a server connlimit
	// knows (Redis, PostgreSQL); absent for others.
	ServerCap *limits.ServerCap `json:"server_cap,omitempty"`
	Note      string            `json:"note,omitempty"` // why a figure is missing
}

// InspectedListener is the listening socket, as sock_diag shows it.
type InspectedListener struct {
	Addr        string `json:"addr"`
	Backlog     int64  `json:"backlog"`
	AcceptQueue int64  `json:"accept_queue"`
	SynRecv     int    `json:"syn_recv"`
	Established int    `json:"established"` // connections on its port
	// ByRemote is the established connections by remote address, most
	// first, at most ten: one port, told apart by the clients' addresses
	// and ephemeral ports.
	ByRemote []RemoteCount `json:"by_remote"`
}

// RemoteCount is connections from one remote address.
type RemoteCount struct {
	Addr  string `json:"addr"`
	Count int    `json:"count"`
}

// PortPair is the ephemeral ports this machine's clients use toward the
// target from one source address: each (source, destination) pair has
// the whole range.
type PortPair struct {
	Source string `json:"source"`
	Dest   string `json:"dest"`
	InUse  int    `json:"in_use"`
	Range  int    `json:"range"`
}

// InspectedMachine is the machine's side: -1 where a figure is unreadable.
type InspectedMachine struct {
	FileMax          int64         `json:"file_max"`
	FileNr           int64         `json:"file_nr"`
	ConntrackCount   int64         `json:"conntrack_count"`
	ConntrackMax     int64         `json:"conntrack_max"`
	PortRange        string        `json:"port_range"`
	PortsToTarget    []PortPair    `json:"ports_to_target"`
	TimeWait         int           `json:"time_wait"`
	FinWait2         int           `json:"fin_wait2"`
	Somaxconn        int64         `json:"somaxconn"`
	TCPMaxSynBacklog int64         `json:"tcp_max_syn_backlog"`
	Syncookies       int64         `json:"syncookies"`
	TCPExt           limits.TCPExt `json:"tcpext"` // since boot
}

// Finish computes each process's headroom and the nearest limit, with the
// same words and fixes as run.
func (in *Inspection) Finish() {
	var all []Headroom
	for i := range in.Processes {
		p := &in.Processes[i]
		hs := p.headrooms()
		if len(hs) == 0 {
			p.Headroom, p.HeadroomBy = -1, ""
			continue
		}
		h := slices.MinFunc(hs, func(a, b Headroom) int { return cmp.Compare(a.Connections, b.Connections) })
		p.Headroom, p.HeadroomBy = h.Connections, h.Limit
		all = append(all, hs...)
	}
	all = append(all, in.Machine.headrooms()...)
	if len(all) > 0 {
		h := slices.MinFunc(all, func(a, b Headroom) int { return cmp.Compare(a.Connections, b.Connections) })
		in.Headroom = &h
	}
}

func (p *InspectedProcess) label() string {
	if p.Cmdline != "" {
		return p.Cmdline
	}
	return p.Name
}

func (p *InspectedProcess) unitFix(fix, key string) string {
	if p.Unit != "" {
		fix += fmt.Sprintf("; for %s: systemctl edit %s, then [Service] %s=", p.Unit, p.Unit, key)
	}
	return fix
}

// headrooms are the process's own limits, in connections.
func (p *InspectedProcess) headrooms() []Headroom {
	var out []Headroom
	if p.NoFileSoft > 0 && p.FDs >= 0 {
		free := max(int64(p.NoFileSoft)-int64(p.FDs), 0)
		h := Headroom{Limit: LimitTargetFD, PID: p.PID, Connections: free, Setting: "the target's RLIMIT_NOFILE (soft)",
			Value: fmt.Sprintf("%d (%s, pid %d): %d descriptors open", p.NoFileSoft, p.label(), p.PID, p.FDs),
			Fix:   p.unitFix(fixTargetFD, "LimitNOFILE")}
		if p.Forwarder {
			h.Limit, h.Connections, h.Setting, h.Fix = LimitForwarderFD, free/2, "the forwarder's RLIMIT_NOFILE (soft)", p.unitFix(fixForwarderFD, "LimitNOFILE")
			h.Value += fmt.Sprintf(", two per connection (%d accepted + %d dialed)", p.FDsByKind["tcp-accepted"], p.FDsByKind["tcp-dialed"])
		}
		out = append(out, h)
	}
	if c := p.ServerCap; c != nil {
		out = append(out, Headroom{Limit: LimitTargetClosed, PID: p.PID, Connections: max(c.Cap-c.Clients, 0),
			Setting: c.Server + " " + c.Setting + " (it accepts, then refuses the client)",
			Value:   fmt.Sprintf("%d (%s, pid %d; %s): %d clients", c.Cap, p.label(), p.PID, c.Source, c.Clients),
			Fix:     fmt.Sprintf("raise %s in the server's configuration%s", c.Setting, capFix[c.Server])})
	}
	// Tasks are a connection limit only for a server that spends one per
	// connection: as many tasks as connections it accepted.
	accepted := p.FDsByKind["tcp-accepted"]
	perConn := accepted > 0 && (p.Threads >= accepted || p.UserTasks >= accepted)
	if perConn && p.UID != 0 && p.NProcSoft != ^uint64(0) && p.NProcSoft > 0 {
		out = append(out, Headroom{Limit: LimitTargetTask, PID: p.PID, Connections: max(int64(p.NProcSoft)-int64(p.UserTasks), 0),
			Setting: "the target user's RLIMIT_NPROC (the user's processes and threads, all together)",
			Value:   fmt.Sprintf("%d (%s, pid %d, uid %d): %d tasks of that user", p.NProcSoft, p.label(), p.PID, p.UID, p.UserTasks),
			Fix:     p.unitFix(fixNProc, "LimitNPROC")})
	}
	if perConn && p.PidsMax > 0 && p.PidsCurrent >= 0 {
		out = append(out, Headroom{Limit: LimitTargetTask, PID: p.PID, Connections: max(p.PidsMax-p.PidsCurrent, 0),
			Setting: "the target's cgroup pids.max (its processes and threads)",
			Value:   fmt.Sprintf("%d (%s, pid %d): %d tasks in the cgroup", p.PidsMax, p.label(), p.PID, p.PidsCurrent),
			Fix:     p.unitFix(fixPidsMax, "TasksMax")})
	}
	return out
}

var capFix = map[string]string{
	"redis-server": " (CONFIG SET maxclients N for now), with a soft RLIMIT_NOFILE of at least maxclients + 32",
	"postgres":     " and restart (each client is a process: check its memory and the machine's), or put a pooler such as PgBouncer in front",
}

// headrooms are the machine's limits, in connections of this machine: a
// connection whose client is here costs two descriptors and two entries.
func (m *InspectedMachine) headrooms() []Headroom {
	var out []Headroom
	if m.FileMax > 0 && m.FileNr >= 0 {
		out = append(out, Headroom{Limit: LimitSystemFD, Connections: max(m.FileMax-m.FileNr, 0), Setting: "fs.file-max",
			Value: fmt.Sprintf("%d: %d file handles allocated", m.FileMax, m.FileNr), Fix: fixSystemFD})
	}
	if m.ConntrackMax > 0 && m.ConntrackCount >= 0 {
		out = append(out, Headroom{Limit: LimitConntrackFull, Connections: max(m.ConntrackMax-m.ConntrackCount, 0),
			Setting: "net.netfilter.nf_conntrack_max (the connection-tracking table)",
			Value:   fmt.Sprintf("%d: %d entries", m.ConntrackMax, m.ConntrackCount), Fix: fixConntrack})
	}
	for _, pp := range m.PortsToTarget {
		if pp.Range <= 0 {
			continue // the range was not read
		}
		out = append(out, Headroom{Limit: LimitEphemeralPorts, Connections: int64(max(pp.Range-pp.InUse, 0)),
			Setting: "net.ipv4.ip_local_port_range",
			Value:   fmt.Sprintf("%s (%d ports): %d in use from %s to %s", m.PortRange, pp.Range, pp.InUse, pp.Source, pp.Dest),
			Fix:     fixEphemeralPorts})
	}
	return out
}

// VerdictLine is the nearest limit in one line: "nginx (pid 812): 1003 of
// 1024 descriptors — 21 more connections before accept() fails with EMFILE".
func (in *Inspection) VerdictLine() string {
	h := in.Headroom
	if h == nil {
		return "nearest limit: unknown (no limit could be read)"
	}
	what := map[string]string{
		LimitTargetFD:       "accept() fails with EMFILE",
		LimitForwarderFD:    "the forwarder runs out of descriptors (two per connection)",
		LimitTargetClosed:   "the server refuses the next client at its own cap",
		LimitTargetTask:     "it cannot start the process or thread the next connection needs",
		LimitSystemFD:       "the machine runs out of file handles (ENFILE)",
		LimitConntrackFull:  "the connection-tracking table is full and SYNs are dropped",
		LimitEphemeralPorts: "connect() finds no local port (EADDRNOTAVAIL)",
	}[h.Limit]
	return fmt.Sprintf("nearest limit: %s — %d more connections before %s", h.Limit, h.Connections, what)
}

// WriteInspectText prints the inspection for a person.
func WriteInspectText(w io.Writer, in *Inspection) error {
	b := &strings.Builder{}
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	num := func(n int64) string {
		if n < 0 {
			return "unknown"
		}
		return fmt.Sprint(n)
	}
	if in.Target != "" {
		p("connlimit inspect %s (read only: nothing was sent to it)\n\n", in.Target)
	}
	p("%s\n", in.VerdictLine())
	if h := in.Headroom; h != nil {
		p("  setting: %s = %s\n  to move it: %s\n", h.Setting, h.Value, h.Fix)
	}
	p("\nprocesses behind it:\n")
	if len(in.Processes) == 0 {
		p("  none readable\n")
	}
	for _, pr := range in.Processes {
		p("  pid %d %s (state %s", pr.PID, trunc(pr.label(), 60), pr.State)
		if pr.Unit != "" {
			p(", %s", pr.Unit)
		}
		p(")\n")
		if pr.Note != "" {
			p("    %s\n", pr.Note)
		}
		if pr.NoFileSoft > 0 {
			p("    descriptors: %d open of soft %d (hard %d): %s\n", pr.FDs, pr.NoFileSoft, pr.NoFileHard, kinds(pr.FDsByKind))
		}
		if c := pr.ServerCap; c != nil {
			p("    its own cap: %s %d (%s), %d clients now\n", c.Setting, c.Cap, c.Source, c.Clients)
		}
		if pr.Headroom >= 0 {
			p("    headroom: %d more connections (%s)", pr.Headroom, pr.HeadroomBy)
			if pr.Forwarder {
				p(", two descriptors each: it forwards")
			}
			p("\n")
		}
		nproc := "unlimited"
		if pr.NProcSoft != ^uint64(0) {
			nproc = fmt.Sprint(pr.NProcSoft)
		}
		p("    tasks: %d threads; its user (uid %d) has %d of RLIMIT_NPROC %s; cgroup pids %s of %s\n",
			pr.Threads, pr.UID, pr.UserTasks, nproc, num(pr.PidsCurrent), maxText(pr.PidsMax))
		if pr.MemoryUsage >= 0 || pr.MemoryLimit >= 0 {
			p("    memory cgroup: %s used of %s\n", bytesText(pr.MemoryUsage), maxBytes(pr.MemoryLimit))
		}
	}
	if l := in.Listener; l != nil {
		p("\nlistener %s: backlog %d (the queue holds %d), %d waiting in it now, %d in SYN_RECV\n", l.Addr, l.Backlog, l.Backlog+1, l.AcceptQueue, l.SynRecv)
		p("  %d established connections on its port", l.Established)
		if len(l.ByRemote) > 0 {
			p(", by remote address (one port, told apart by the clients' address and port):\n")
			for _, r := range l.ByRemote {
				p("    %-40s %d\n", r.Addr, r.Count)
			}
		} else {
			p("\n")
		}
	}
	m := in.Machine
	p("\nmachine:\n")
	p("  file handles %s of fs.file-max %s; conntrack %s of %s\n", num(m.FileNr), num(m.FileMax), num(m.ConntrackCount), maxText(m.ConntrackMax))
	p("  TIME_WAIT %d, FIN_WAIT2 %d; somaxconn %s, tcp_max_syn_backlog %s, syncookies %s\n", m.TimeWait, m.FinWait2, num(m.Somaxconn), num(m.TCPMaxSynBacklog), num(m.Syncookies))
	p("  TcpExt since boot: ListenOverflows %d, ListenDrops %d, SyncookiesSent %d, TCPReqQFullDrop %d\n",
		m.TCPExt.ListenOverflows, m.TCPExt.ListenDrops, m.TCPExt.SyncookiesSent, m.TCPExt.TCPReqQFullDrop)
	for _, pp := range m.PortsToTarget {
		p("  ephemeral ports from %s to %s: %d in use of %d (%s)\n", pp.Source, pp.Dest, pp.InUse, pp.Range, m.PortRange)
	}
	for _, n := range in.NotRead {
		p("not read: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func kinds(k map[string]int) string {
	names := make([]string, 0, len(k))
	for n := range k {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		if k[a] != k[b] {
			return k[b] - k[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%d %s", k[n], n))
	}
	return strings.Join(parts, ", ")
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

func maxText(n int64) string {
	if n < 0 {
		return "max"
	}
	return fmt.Sprint(n)
}

func maxBytes(n int64) string {
	if n < 0 || n >= 1<<60 {
		return "no limit"
	}
	return bytesText(n)
}

func bytesText(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return mib(n)
}
