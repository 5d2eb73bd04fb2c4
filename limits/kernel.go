package limits

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
)

// KernelView samples the kernel's side of a run: one listener's accept queue
// (sock_diag) and the growth of the TcpExt counters since it was opened. Both
// readers are opened up front so that sampling needs no new descriptor.
type KernelView struct {
	mu      sync.Mutex // Sample is called by the run's sampler and at the end of the hold
	diag    *SockDiag
	netstat *Netstat
	base    TCPExt
	// Connection tracking, when it is loaded: its counters' baseline.
	procRoot string
	ct       bool
	ctBase   Conntrack
	// Unavailable says why a part cannot be read; nil when all can.
	Unavailable error
}

// KernelSample is one reading.
type KernelSample struct {
	// Listener is nil when no listener was found on the port or sock_diag is unavailable.
	Listener *Listener
	// Listeners is how many of the ports asked about have a listener.
	Listeners int
	// TCPExt is the counters' growth since OpenKernelView; TCPExtRead says
	// they were read.
	TCPExt     TCPExt
	TCPExtRead bool
	// Conntrack is the connection-tracking table now, with Refused counted
	// since OpenKernelView; nil when connection tracking is not loaded.
	Conntrack *ConntrackSample
}

// ConntrackSample is one reading of the connection-tracking table.
type ConntrackSample struct {
	Count, Max int64
	Refused    uint64 // new connections refused an entry since the baseline
}

// OpenKernelView takes the counters' baseline. It never fails: parts that
// cannot be read are named in Unavailable and left out of samples.
func OpenKernelView(procRoot string) *KernelView {
	k := &KernelView{procRoot: procRoot}
	// Not loaded is the common case, not a failure: nothing is tracked.
	if base, err := ReadConntrack(procRoot); err == nil {
		k.ct, k.ctBase = true, base
	}
	var errs []error
	var err error
	if k.diag, err = OpenSockDiag(); err != nil {
		errs = append(errs, err)
	}
	if k.netstat, err = OpenNetstat(procRoot); err != nil {
		errs = append(errs, err)
	} else if k.base, err = k.netstat.Read(); err != nil {
		errs = append(errs, err)
		k.netstat.Close()
		k.netstat = nil
	}
	k.Unavailable = errors.Join(errs...)
	return k
}

// Sample reads the listeners on ports and the counters now. With several
// ports (one target process each) the listener reported is their sum: the
// accept queues added up, the backlog of the first (they share one setting).
func (k *KernelView) Sample(ports ...uint16) KernelSample {
	k.mu.Lock()
	defer k.mu.Unlock()
	var s KernelSample
	if k.diag != nil {
		q := uint16(0) // one port: the kernel filters; several: one dump of every listener
		if len(ports) == 1 {
			q = ports[0]
		}
		if ls, err := k.diag.Listeners(q); err == nil {
			for _, l := range ls {
				if !slices.Contains(ports, l.Addr.Port()) {
					continue
				}
				s.Listeners++
				if s.Listener == nil {
					first := l
					s.Listener = &first
				} else {
					s.Listener.AcceptQueue += l.AcceptQueue
				}
			}
		}
	}
	if k.netstat != nil {
		if now, err := k.netstat.Read(); err == nil {
			s.TCPExt, s.TCPExtRead = now.Sub(k.base), true
		}
	}
	if k.ct {
		if now, err := ReadConntrack(k.procRoot); err == nil {
			s.Conntrack = &ConntrackSample{Count: now.Count, Max: now.Max, Refused: now.Refused(k.ctBase)}
		}
	}
	return s
}

// Close releases both readers.
func (k *KernelView) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.diag != nil {
		k.diag.Close()
	}
	if k.netstat != nil {
		k.netstat.Close()
	}
}

// Listeners lists the TCP listeners on port, as Sample does.
func (k *KernelView) Listeners(port uint16) ([]Listener, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.diag == nil {
		return nil, k.Unavailable
	}
	return k.diag.Listeners(port)
}

// ServerConn is a server-side connection: Client is the peer's address,
// Port the listener's.
type ServerConn struct {
	Client netip.AddrPort
	Port   uint16
}

// Queued lists the connections still waiting in the accept queues of the
// listeners on ports (see SockDiag.Queued).
func (k *KernelView) Queued(ports []uint16) (map[ServerConn]bool, error) {
	return k.serverConns(ports, (*SockDiag).Queued)
}

// Accepted lists the connections the server on ports has accepted and still
// holds (see SockDiag.Accepted).
func (k *KernelView) Accepted(ports []uint16) (map[ServerConn]bool, error) {
	return k.serverConns(ports, (*SockDiag).Accepted)
}

func (k *KernelView) serverConns(ports []uint16, list func(*SockDiag, []uint16) (map[ServerConn]bool, error)) (map[ServerConn]bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.diag == nil {
		return nil, k.Unavailable
	}
	return list(k.diag, ports)
}

// Established lists every established TCP socket of a process, by inode
// (see SockDiag.Established).
func (k *KernelView) Established() (map[uint32]Conn, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.diag == nil {
		return nil, k.Unavailable
	}
	return k.diag.Established()
}
