package report

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/connlimit/connlimit/limits"
)

// The fixes, one place for run and inspect.
const (
	fixTargetFD       = "raise the target's soft limit: ulimit -n / systemd LimitNOFILE= / nginx worker_rlimit_nofile (built-in target: --target-nofile)"
	fixSystemFD       = "raise the system-wide limit: sysctl -w fs.file-max=N, or close descriptors elsewhere"
	fixEphemeralPorts = "bind to more source addresses (127.0.0.2, ...) or spread over more target ports, or widen net.ipv4.ip_local_port_range"
	fixForwarderFD    = "a userspace forwarder holds two descriptors per connection: give it twice the target's limit (--forward-nofile; docker-proxy: the daemon's LimitNOFILE=), or forward in the kernel (nftables/iptables DNAT, IPVS)"
	fixConntrack      = "raise net.netfilter.nf_conntrack_max (and nf_conntrack_buckets), or stop tracking the port (nftables: notrack in a raw prerouting chain)"
	fixPidsMax        = "raise the cgroup's pids.max (systemd: TasksMax=; docker/podman: --pids-limit), or serve connections without a thread or process each"
	fixNProc          = "raise the user's process limit (ulimit -u; systemd: LimitNPROC=; /etc/security/limits.conf nproc), or serve connections without a thread or process each"
)

// limitDetail names the setting behind the first limit, its value as this
// run saw it, and the change that would move it; where the process behind
// the limit runs in a systemd unit, the fix names the unit's setting.
func (s *Summary) limitDetail() (setting, value, fix string) {
	setting, value, fix = s.limitDetailOf()
	if p, key := s.limitingProcess(); p != nil && p.Unit != "" && key != "" {
		fix += fmt.Sprintf("; for %s: systemctl edit %s, then [Service] %s=", p.Unit, p.Unit, key)
	}
	return setting, value, fix
}

// limitingProcess is the process behind the port that the verdict rests on,
// with the systemd setting that moves its limit.
func (s *Summary) limitingProcess() (*Process, string) {
	ps := s.TargetProcesses
	switch s.FirstLimit {
	case LimitTargetFD:
		return atLimit(ps), "LimitNOFILE"
	case LimitForwarderFD:
		return forwarderAtLimit(ps), "LimitNOFILE"
	case LimitTargetTask:
		if p := nprocLimited(ps); p != nil && limitedBy(ps, func(c *ProcessCgroup) bool { return c.PidsRefused > 0 }) == nil {
			return p, "LimitNPROC"
		}
		return limitedBy(ps, func(c *ProcessCgroup) bool { return c.PidsRefused > 0 }), "TasksMax"
	case LimitTargetMemory:
		return limitedBy(ps, func(c *ProcessCgroup) bool { return c.OOMKills > 0 }), "MemoryMax"
	}
	return nil, ""
}

func (s *Summary) limitDetailOf() (setting, value, fix string) {
	t, k, sys := s.Target, s.Kernel, s.Limits.Sysctls
	unknown := "unknown"
	switch s.FirstLimit {
	case LimitTargetFD:
		value = unknown
		if p := atLimit(s.TargetProcesses); p != nil && (t == nil || t.FirstEMFILE == nil) {
			value = fmt.Sprintf("%d (%s, pid %d)", p.NoFileSoft, p.Label(), p.PID)
		} else if t != nil {
			value = strconv.FormatUint(t.NoFileSoft, 10)
		}
		return "the target's RLIMIT_NOFILE (soft)", value,
			fixTargetFD
	case LimitTargetNotAccepting:
		if t != nil && t.MaxConns > 0 {
			return capSetting(t), strconv.Itoa(t.MaxConns),
				"raise the application's connection cap, or stop it from holding connections it does not need"
		}
		value = "not calling accept() with descriptors to spare"
		if ps := procsText(s.TargetProcesses); ps != "" {
			value += ": " + ps
		}
		return "the target's accept loop", value,
			"find why the target stops accepting: an application connection cap (maxclients, max_connections) or a stalled accept loop"
	case LimitAcceptQueueFull:
		value = unknown
		switch {
		case k != nil && k.ListenBacklog >= 0:
			value = fmt.Sprintf("%d (the queue holds %d)", k.ListenBacklog, k.ListenBacklog+1)
		case sys.Somaxconn >= 0:
			value = fmt.Sprintf("at most net.core.somaxconn = %d", sys.Somaxconn)
		}
		return "the listen backlog (the smaller of listen()'s backlog and net.core.somaxconn)", value,
			"make the target accept faster, or raise the backlog: net.core.somaxconn and the server's listen backlog (built-in target: --backlog)"
	case LimitTargetClosed:
		if t != nil && t.MaxConns > 0 {
			return capSetting(t), strconv.Itoa(t.MaxConns),
				"raise the application's connection cap (maxclients, max_connections)"
		}
		if s.servedClosed > 0 {
			return "the target's connection slots (nginx: worker_connections; a server that closes idle connections to make room)",
				fmt.Sprintf("%d held at once; %d connections it had served it closed while new ones came", s.FirstLimitAt, s.servedClosed),
				"raise the server's connection slots (nginx: worker_connections, and worker_rlimit_nofile to match), or keep fewer connections idle"
		}
		value = "closes or resets accepted connections"
		if len(s.Reasons) > 0 {
			value += fmt.Sprintf(", saying %q", s.Reasons[0].Reason)
		}
		return "the target's own connection handling", value,
			"read the target's logs: a connection cap (maxclients, max_connections) or an error closes them"
	case LimitClientFD:
		return "the generator's RLIMIT_NOFILE (soft)", strconv.FormatUint(s.Limits.Generator.Soft, 10),
			"raise the generator's soft limit: ulimit -n (connlimit: --nofile), or spread the load over more processes"
	case LimitSystemFD:
		return "fs.file-max", strconv.FormatInt(sys.FileMax, 10),
			fixSystemFD
	case LimitEphemeralPorts:
		r := sys.PortRange
		return "net.ipv4.ip_local_port_range", fmt.Sprintf("%d %d (%d ports per source address and target ip:port)", r.Low, r.High, r.Count()),
			fixEphemeralPorts
	case LimitForwarderFD:
		value = unknown
		if f := s.Forwarder; f != nil {
			value = strconv.FormatUint(f.NoFileSoft, 10)
		} else if p := forwarderAtLimit(s.TargetProcesses); p != nil {
			value = fmt.Sprintf("%d (%s, pid %d): %d accepted + %d dialed to %s + %d others", p.NoFileSoft, p.Label(), p.PID,
				p.ConnsAccepted, p.ConnsDialed, p.DialedTo, max(0, p.SlotsUsedMax-p.ConnsAccepted-p.ConnsDialed))
		}
		return "the forwarder's RLIMIT_NOFILE (soft)", value,
			fixForwarderFD
	case LimitCorruptReply:
		value = fmt.Sprintf("%d replies differed from what was sent", s.Outcomes["corrupt"])
		if r := s.reasonFor("corrupt"); r != "" {
			value += ", the first: " + r
		}
		return "the target's replies (--probe " + s.Probe + ")", value,
			"check that the server echoes what it is sent, and that nothing in between (a proxy, a TLS terminator) rewrites the stream"
	case LimitOtherError:
		value = fmt.Sprintf("%d attempts failed with an error connlimit does not classify", s.Outcomes["other"])
		if s.otherErrno != "" {
			value += ", the first " + s.otherErrno
		}
		for _, r := range s.Reasons {
			if r.Outcome == "other" {
				value += fmt.Sprintf(" (%s)", r.Reason)
				break
			}
		}
		return "an error outside the known limits", value,
			"read the errno column of the --csv report; connlimit names the limits it knows, and this is none of them"
	case LimitTargetDied, LimitGeneratorDied:
		value = unknown
		if d := s.Died; d != nil {
			value = d.Text()
		}
		if s.FirstLimit == LimitGeneratorDied {
			return "a generator process", value,
				"the generator, not the target, stopped: read why it died (dmesg for the OOM killer, a signal someone sent) and run again"
		}
		return "the target process", value,
			"read why it died: a crash (its log, a core dump), the OOM killer (dmesg, memory.events), or a signal someone sent"
	case LimitConntrackFull:
		value = unknown
		if ct := k.Conntrack; k != nil && ct != nil {
			value = fmt.Sprintf("%d (at most %d entries in the samples; %d new connections refused an entry)", ct.Max, ct.CountMax, ct.Refused)
		}
		return "net.netfilter.nf_conntrack_max (the connection-tracking table)", value,
			fixConntrack
	case LimitPacketFilter:
		value = "the listener was there"
		if k != nil && k.ListenBacklog >= 0 {
			value += fmt.Sprintf(" with room (longest accept queue %d of %d)", k.AcceptQueueMax, k.ListenBacklog+1)
		}
		if k != nil && k.TCPExtRead {
			value += fmt.Sprintf(" and ListenOverflows +%d", k.TCPExt.ListenOverflows)
		}
		if k != nil && len(k.FilterRules) > 0 {
			value += fmt.Sprintf("; the rule that fired: %s (%d packets)", k.FilterRules[0].Rule, k.FilterRules[0].Packets)
		}
		return "a packet filter in front of the listener (nftables, iptables)", value,
			"list the rules that match the port and their counters (nft list ruleset; iptables -L -n -v): a per-source cap (ct count, connlimit, hashlimit), a REJECT or a DROP"
	case LimitTargetTask:
		if p := limitedBy(s.TargetProcesses, func(c *ProcessCgroup) bool { return c.PidsRefused > 0 }); p != nil {
			return "the target's cgroup pids.max (its processes and threads)",
				fmt.Sprintf("%d (%s, pid %d): %d forks or thread starts refused during the run", p.Cgroup.PidsMax, p.Label(), p.PID, p.Cgroup.PidsRefused),
				fixPidsMax
		}
		value = unknown
		if p := nprocLimited(s.TargetProcesses); p != nil {
			value = fmt.Sprintf("%d (%s, pid %d, uid %d): %d tasks of that user, %d of them its threads", p.NProc.Soft, p.Label(), p.PID, p.NProc.UID, p.NProc.UserTasks, p.NProc.Threads)
		} else if kt := kernelTasks(k); kt != nil && kt.AtPidMax() {
			return "kernel.pid_max (the PIDs of the PID namespace: a process or thread each)",
				fmt.Sprintf("%d: %d tasks in %s PID namespace at the end of the hold", kt.PidMax, kt.Pids, whosePidNS(kt)),
				"raise kernel.pid_max (sysctl -w kernel.pid_max=N, per PID namespace since Linux 6.14), or serve connections without a thread or process each"
		} else if kt != nil && kt.AtThreadsMax() {
			return "kernel.threads-max (every thread on the machine)",
				fmt.Sprintf("%d: %d threads on the machine at the end of the hold", kt.ThreadsMax, kt.Threads),
				"raise kernel.threads-max (sysctl -w kernel.threads-max=N), or serve connections without a thread or process each"
		}
		return "the target user's RLIMIT_NPROC (the user's processes and threads, all together)", value,
			fixNProc
	case LimitTargetMemory:
		value = unknown
		if p := limitedBy(s.TargetProcesses, func(c *ProcessCgroup) bool { return c.OOMKills > 0 }); p != nil {
			value = fmt.Sprintf("%s (%s, pid %d): %d OOM kills, %d times at the limit during the run", mib(p.Cgroup.MemoryLimit), p.Label(), p.PID, p.Cgroup.OOMKills, p.Cgroup.MemoryFailcnt)
		}
		return "the target's memory cgroup limit", value,
			"raise the cgroup's memory limit (systemd: MemoryMax=; v1 memory.limit_in_bytes; docker/podman: --memory), or make each connection cost the server less"
	case LimitRefused:
		return "a listener at the target address", s.TargetAddr + ": none (or it was closed)",
			"start the server or fix the address; a server that closes its listener under load needs its logs read"
	}
	return "", "", ""
}

// procsText is "name (pid N): X of Y descriptors open" for each readable process.
func procsText(ps []Process) string {
	var parts []string
	for _, p := range ps {
		if p.Readable {
			parts = append(parts, fmt.Sprintf("%s (pid %d): at most %d of %d descriptors open", p.Label(), p.PID, p.FDsMax, p.NoFileSoft))
		}
	}
	return strings.Join(parts, "; ")
}

// capSetting names the built-in target's connection cap and its policy.
func capSetting(t *Target) string {
	return "the target's connection cap (--max-conns, at the cap: " + t.OnMaxConns + ")"
}

// reasonFor is the most frequent reason given for outcome o, or "".
func (s *Summary) reasonFor(o string) string {
	for _, r := range s.Reasons {
		if r.Outcome == o {
			return r.Reason
		}
	}
	return ""
}

// limitedBy is the first process whose cgroup shows what refused says.
func limitedBy(ps []Process, refused func(*ProcessCgroup) bool) *Process {
	for i := range ps {
		if c := ps[i].Cgroup; c != nil && refused(c) {
			return &ps[i]
		}
	}
	return nil
}

// mib writes a byte limit: "40 MiB", or "no limit".
func mib(b int64) string {
	if b < 0 || b >= 1<<50 {
		return "no limit"
	}
	return fmt.Sprintf("%d MiB", b>>20)
}

// nprocLimited is the first process whose user is at RLIMIT_NPROC.
func nprocLimited(ps []Process) *Process {
	for i := range ps {
		if n := ps[i].NProc; n != nil && n.AtLimit {
			return &ps[i]
		}
	}
	return nil
}

func whosePidNS(kt *limits.KernelTasks) string {
	if kt.OtherPidNamespace {
		return "the target's " + kt.PidNamespace
	}
	return "connlimit's and the target's"
}
