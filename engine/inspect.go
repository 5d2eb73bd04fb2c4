package engine

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/connlimit/connlimit/limits"
	"github.com/connlimit/connlimit/report"
)

// InspectConfig says which live server to read.
type InspectConfig struct {
	Addr     netip.AddrPort // its listener; zero with PIDs alone
	PIDs     []int          // the processes to read; empty: those holding the listener
	ProcRoot string
}

// ErrNotFound is Inspect's error when nothing listens at the address or a
// process does not exist: exit status 3.
var ErrNotFound = errors.New("not found")

// Inspect reads a live server's headroom without sending it a packet:
// sock_diag for its sockets, /proc for its processes, the machine's limits.
// It shares the run's readings and its verdict words.
func Inspect(cfg InspectConfig) (*report.Inspection, error) {
	procRoot := cmp.Or(cfg.ProcRoot, limits.DefaultProcRoot)
	in := &report.Inspection{SchemaVersion: report.InspectSchemaVersion, NotRead: []string{}}
	sd, err := limits.OpenSockDiag()
	if err != nil {
		return nil, err
	}
	defer sd.Close()
	socks, err := sd.TCPSockets(limits.TCPAllStates)
	if err != nil {
		return nil, err
	}
	byInode := make(map[uint32]*limits.TCPSocket, len(socks))
	for i := range socks {
		if socks[i].Inode != 0 {
			byInode[socks[i].Inode] = &socks[i]
		}
	}
	pids := cfg.PIDs
	for _, pid := range pids {
		if _, err := os.Stat(filepath.Join(procRoot, strconv.Itoa(pid))); err != nil {
			return nil, fmt.Errorf("--pid %d: no such process (%w)", pid, ErrNotFound)
		}
	}
	addr := cfg.Addr
	if !addr.IsValid() && len(pids) > 0 {
		addr = listenerOf(procRoot, pids[0], byInode) // a process's own listener, if it has one
	}
	var lis *limits.TCPSocket
	if addr.IsValid() {
		lis = findListener(socks, addr)
		if lis == nil && len(pids) == 0 {
			return nil, fmt.Errorf("nothing listens at %s (%w): start the server, check the address (ss -ltn), or give --pid", addr, ErrNotFound)
		}
	}
	if lis != nil {
		in.Target = addr.String()
		if len(pids) == 0 {
			owners, denied, err := limits.SocketOwners(procRoot, lis.Inode)
			if err != nil {
				return nil, err
			}
			pids = owners
			if len(owners) == 0 {
				in.NotRead = append(in.NotRead, fmt.Sprintf("the processes behind the listener: it belongs to uid %d, whose processes this user cannot read (%d denied); run as that user or as root, or give --pid", listenerUID(sd, addr), denied))
			}
		}
		in.Listener = listenerView(socks, lis)
	}
	other := limits.ReadOtherSocketInodes(procRoot)
	for _, pid := range pids {
		p := inspectProcess(procRoot, pid, port(lis), byInode, other)
		if c, ok := limits.ReadServerCap(procRoot, pid, p.NoFileSoft); ok {
			c.Clients = int64(p.FDsByKind["tcp-accepted"])
			if in.Listener != nil {
				c.Clients = int64(in.Listener.Established)
			}
			p.ServerCap = &c
		}
		in.Processes = append(in.Processes, p)
	}
	in.Machine, in.NotRead = machineView(procRoot, socks, lis, in.NotRead)
	in.Finish()
	return in, nil
}

func port(l *limits.TCPSocket) uint16 {
	if l == nil {
		return 0
	}
	return l.Local.Port()
}

// findListener is the listening socket that takes connections to addr:
// bound to it, or to the wildcard address of its family.
func findListener(socks []limits.TCPSocket, addr netip.AddrPort) *limits.TCPSocket {
	var wild *limits.TCPSocket
	for i := range socks {
		s := &socks[i]
		if s.State != limits.TCPListen || s.Local.Port() != addr.Port() {
			continue
		}
		switch {
		case s.Local.Addr() == addr.Addr().Unmap():
			return s
		case s.Local.Addr().IsUnspecified():
			wild = s
		}
	}
	return wild
}

func listenerUID(sd *limits.SockDiag, addr netip.AddrPort) uint32 {
	if ls, err := sd.Listeners(addr.Port()); err == nil && len(ls) > 0 {
		return ls[0].UID
	}
	return 0
}

// listenerOf is the first TCP listener pid holds.
func listenerOf(procRoot string, pid int, byInode map[uint32]*limits.TCPSocket) netip.AddrPort {
	dir := filepath.Join(procRoot, strconv.Itoa(pid), "fd")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		link, _ := os.Readlink(filepath.Join(dir, e.Name()))
		if ino, ok := limits.SocketInode(link); ok {
			if s := byInode[uint32(ino)]; s != nil && s.State == limits.TCPListen {
				return s.Local
			}
		}
	}
	return netip.AddrPort{}
}

func listenerView(socks []limits.TCPSocket, lis *limits.TCPSocket) *report.InspectedListener {
	l := &report.InspectedListener{Addr: lis.Local.String(), Backlog: int64(lis.SendQ), AcceptQueue: int64(lis.RecvQ)}
	byRemote := map[netip.Addr]int{}
	for i := range socks {
		s := &socks[i]
		if s.Local.Port() != lis.Local.Port() || !(lis.Local.Addr().IsUnspecified() || s.Local.Addr() == lis.Local.Addr()) {
			continue
		}
		switch s.State {
		case limits.TCPSynRecv:
			l.SynRecv++
		case limits.TCPEstablished:
			l.Established++
			byRemote[s.Remote.Addr()]++
		}
	}
	for a, n := range byRemote {
		l.ByRemote = append(l.ByRemote, report.RemoteCount{Addr: a.String(), Count: n})
	}
	slices.SortFunc(l.ByRemote, func(a, b report.RemoteCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Addr, b.Addr))
	})
	l.ByRemote = l.ByRemote[:min(len(l.ByRemote), 10)]
	return l
}

// inspectProcess reads one process: its limits, descriptors by kind,
// tasks and cgroup. A figure it cannot read stays at its zero (or -1) and
// the note says why.
func inspectProcess(procRoot string, pid int, port uint16, byInode map[uint32]*limits.TCPSocket, other limits.OtherSocketInodes) report.InspectedProcess {
	p := report.InspectedProcess{PID: pid, FDs: -1, FDsByKind: map[string]int{}, PidsMax: -1, PidsCurrent: -1, MemoryLimit: -1, MemoryUsage: -1, NProcSoft: ^uint64(0)}
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	p.Name, p.Cmdline = limits.ProcessNames(procRoot, pid)
	if b, err := os.ReadFile(filepath.Join(dir, "stat")); err == nil {
		// "pid (comm) S ...": the state follows the last ")".
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) {
			p.State = string(b[i+2])
		}
	}
	var notes []string
	if f, err := os.Open(filepath.Join(dir, "limits")); err == nil {
		p.NoFileSoft, p.NoFileHard, err = limits.ParseLimitsNoFile(f)
		f.Close()
		if err != nil {
			notes = append(notes, "limits: "+err.Error())
		}
	} else {
		notes = append(notes, "limits: "+err.Error())
	}
	if ents, err := os.ReadDir(filepath.Join(dir, "fd")); err == nil {
		p.FDs = 0
		for _, e := range ents {
			link, err := os.Readlink(filepath.Join(dir, "fd", e.Name()))
			if err != nil {
				continue // closed since the listing
			}
			p.FDs++
			p.FDsByKind[fdKind(link, port, byInode, other)]++
		}
	} else {
		notes = append(notes, "descriptors: "+err.Error()+" (run as its user or as root)")
	}
	acc, dia := p.FDsByKind["tcp-accepted"], p.FDsByKind["tcp-dialed"]
	p.Forwarder = acc > 0 && 2*dia >= acc
	if tk, err := limits.ReadTasks(procRoot, pid); err == nil {
		p.Threads, p.UID, p.NProcSoft, p.UserTasks = tk.Threads, tk.UID, tk.NProcSoft, tk.UserTasks
	} else {
		notes = append(notes, "tasks: "+err.Error())
	}
	if cg, err := limits.CgroupOf(procRoot, limits.DefaultCgroupRoot, pid); err == nil {
		c := cg.Read()
		p.Unit, p.PidsMax, p.PidsCurrent, p.MemoryLimit, p.MemoryUsage = cg.Unit, c.PidsMax, c.PidsCurrent, c.MemoryLimit, c.MemoryUsage
	}
	p.Note = strings.Join(notes, "; ")
	return p
}

// fdKind names a descriptor for inspect: sockets by what the kernel says
// they are, the rest by their link.
func fdKind(link string, port uint16, byInode map[uint32]*limits.TCPSocket, other limits.OtherSocketInodes) string {
	ino, ok := limits.SocketInode(link)
	if !ok {
		switch k := limits.KindOf(3, link); k {
		case limits.KindFile, limits.KindCgroup:
			return "file"
		case limits.KindPipe, limits.KindEpoll, limits.KindEventfd:
			return k
		}
		return "other"
	}
	if s := byInode[uint32(ino)]; s != nil {
		switch {
		case s.State == limits.TCPListen:
			return "tcp-listening"
		case s.State != limits.TCPEstablished:
			return "tcp-other"
		case s.Local.Port() == port:
			return "tcp-accepted"
		}
		return "tcp-dialed"
	}
	switch {
	case other.UDP[ino]:
		return "udp"
	case other.Unix[ino]:
		return "unix"
	}
	return "socket-other"
}

func machineView(procRoot string, socks []limits.TCPSocket, lis *limits.TCPSocket, notRead []string) (report.InspectedMachine, []string) {
	m := report.InspectedMachine{ConntrackCount: -1, ConntrackMax: -1}
	sc, err := limits.ReadSysctls(procRoot)
	if err != nil {
		notRead = append(notRead, "sysctls: "+err.Error())
	}
	m.FileMax, m.FileNr, m.Somaxconn, m.TCPMaxSynBacklog, m.Syncookies = sc.FileMax, sc.FileNrAllocated, sc.Somaxconn, sc.TCPMaxSynBacklog, sc.TCPSyncookies
	if sc.PortRange.Low >= 0 {
		m.PortRange = fmt.Sprintf("%d-%d", sc.PortRange.Low, sc.PortRange.High)
	}
	if ct, err := limits.ReadConntrack(procRoot); err == nil {
		m.ConntrackCount, m.ConntrackMax = ct.Count, ct.Max
	}
	if ns, err := limits.OpenNetstat(procRoot); err == nil {
		if m.TCPExt, err = ns.Read(); err != nil {
			notRead = append(notRead, "TcpExt: "+err.Error())
		}
		ns.Close()
	}
	type pair struct{ src, dst netip.AddrPort }
	pairs := map[pair]int{}
	for i := range socks {
		s := &socks[i]
		switch s.State {
		case limits.TCPTimeWait:
			m.TimeWait++
		case limits.TCPFinWait2:
			m.FinWait2++
		}
		// A client on this machine: its remote end is the listener's port.
		if lis != nil && s.State != limits.TCPListen && s.Remote.Port() == lis.Local.Port() &&
			(lis.Local.Addr().IsUnspecified() || s.Remote.Addr() == lis.Local.Addr()) {
			pairs[pair{netip.AddrPortFrom(s.Local.Addr(), 0), s.Remote}]++
		}
	}
	for pr, n := range pairs {
		m.PortsToTarget = append(m.PortsToTarget, report.PortPair{Source: pr.src.Addr().String(), Dest: pr.dst.String(), InUse: n, Range: sc.PortRange.Count()})
	}
	slices.SortFunc(m.PortsToTarget, func(a, b report.PortPair) int { return cmp.Compare(b.InUse, a.InUse) })
	return m, notRead
}
