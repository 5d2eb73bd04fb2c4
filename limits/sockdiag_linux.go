package limits

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// sock_diag wire layout (linux/inet_diag.h); x/sys/unix has the constants
// but not these structs.
const (
	sizeofNlMsghdr      = 16
	sizeofInetDiagReq   = 56 // inet_diag_req_v2
	sizeofInetDiagMsg   = 72 // inet_diag_msg
	tcpListenState      = 10 // TCP_LISTEN
	tcpEstablishedState = 1  // TCP_ESTABLISHED
	diagRecvBufferSize  = 64 << 10
)

// SockDiag asks the kernel about listening TCP sockets over NETLINK_SOCK_DIAG
// (what ss -lnt shows). It keeps one netlink socket open so that readings work
// when the process is out of descriptors, and asks only for sockets in LISTEN
// state, so a reading costs the same with a million connections open.
type SockDiag struct {
	fd  int
	seq uint32
	buf []byte
}

// OpenSockDiag opens the netlink socket, in the caller's network namespace.
func OpenSockDiag() (*SockDiag, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, os.NewSyscallError("socket(AF_NETLINK, NETLINK_SOCK_DIAG)", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("bind(netlink)", err)
	}
	return &SockDiag{fd: fd, buf: make([]byte, diagRecvBufferSize)}, nil
}

// Close releases the socket.
func (d *SockDiag) Close() error { return unix.Close(d.fd) }

// Listeners returns the TCP listeners on port (IPv4 and IPv6; 0 = all ports).
func (d *SockDiag) Listeners(port uint16) ([]Listener, error) {
	var out []Listener
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		ls, err := d.dump(family, port)
		if err != nil {
			return nil, err
		}
		out = append(out, ls...)
	}
	return out, nil
}

func (d *SockDiag) dump(family uint8, port uint16) ([]Listener, error) {
	var out []Listener
	err := d.each(family, 1<<tcpListenState, port, listenersOn(port, &out))
	return out, err
}

// listenersOn appends the listeners on port (0: any) among the messages.
func listenersOn(port uint16, out *[]Listener) func(msg []byte) {
	return func(m []byte) {
		if ls, ok := parseListener(m); ok && (port == 0 || ls.Addr.Port() == port) {
			*out = append(*out, ls)
		}
	}
}

// Queued lists the established server-side connections on these local ports
// that still wait in an accept queue: until accept() gives a socket a file,
// its inode is 0. It walks every established TCP socket, so call it once,
// not per sample.
func (d *SockDiag) Queued(ports []uint16) (map[ServerConn]bool, error) {
	return d.serverConns(ports, false)
}

// Accepted lists the established server-side connections on these local
// ports that the server has accepted (their socket has an inode).
func (d *SockDiag) Accepted(ports []uint16) (map[ServerConn]bool, error) {
	return d.serverConns(ports, true)
}

func (d *SockDiag) serverConns(ports []uint16, accepted bool) (map[ServerConn]bool, error) {
	want := map[uint16]bool{}
	for _, p := range ports {
		want[p] = true
	}
	out := map[ServerConn]bool{}
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		err := d.each(family, 1<<tcpEstablishedState, 0, func(m []byte) {
			id := m[4:52]
			sport := binary.BigEndian.Uint16(id[0:])
			if m[1] != tcpEstablishedState || !want[sport] || (binary.NativeEndian.Uint32(m[68:]) != 0) != accepted {
				return
			}
			var peer netip.Addr
			if m[0] == unix.AF_INET {
				peer = netip.AddrFrom4([4]byte(id[20:24]))
			} else {
				peer = netip.AddrFrom16([16]byte(id[20:36])).Unmap()
			}
			out[ServerConn{netip.AddrPortFrom(peer, binary.BigEndian.Uint16(id[2:])), sport}] = true
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// each dumps the TCP sockets of family in the states of mask and calls fn
// with every inet_diag_msg. A port narrows a dump of listeners only.
func (d *SockDiag) each(family uint8, states uint32, port uint16, fn func(msg []byte)) error {
	d.seq++
	req := make([]byte, sizeofNlMsghdr+sizeofInetDiagReq)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], d.seq)
	r := req[sizeofNlMsghdr:]
	r[0], r[1] = family, unix.IPPROTO_TCP
	ne.PutUint32(r[4:], states)
	binary.BigEndian.PutUint16(r[8:], port) // the kernel skips other listening ports
	if err := unix.Sendto(d.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return os.NewSyscallError("sendto(sock_diag)", err)
	}
	for {
		n, _, err := unix.Recvfrom(d.fd, d.buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("recvfrom(sock_diag)", err)
		}
		done, err := parseDiag(d.buf[:n], d.seq, fn)
		if err != nil || done {
			return err
		}
	}
}

// parseDiag calls fn with each inet_diag_msg in one netlink datagram; done
// is true at NLMSG_DONE.
func parseDiag(b []byte, seq uint32, fn func(msg []byte)) (done bool, err error) {
	ne := binary.NativeEndian
	for len(b) >= sizeofNlMsghdr {
		l := int(ne.Uint32(b[0:]))
		if l < sizeofNlMsghdr || l > len(b) {
			return true, fmt.Errorf("sock_diag: bad netlink message length %d", l)
		}
		typ, msgSeq := ne.Uint16(b[4:]), ne.Uint32(b[8:])
		body := b[sizeofNlMsghdr:l]
		b = b[min(len(b), (l+3)&^3):]
		if msgSeq != seq {
			continue // a late answer to an earlier request
		}
		switch typ {
		case unix.NLMSG_DONE:
			return true, nil
		case unix.NLMSG_ERROR:
			if len(body) >= 4 {
				if e := int32(ne.Uint32(body)); e != 0 {
					return true, os.NewSyscallError("sock_diag", syscall.Errno(-e))
				}
			}
			return true, nil
		case unix.SOCK_DIAG_BY_FAMILY:
			if len(body) < sizeofInetDiagMsg {
				return true, fmt.Errorf("sock_diag: short inet_diag_msg (%d bytes)", len(body))
			}
			fn(body)
		}
	}
	return false, nil
}

func parseListener(m []byte) (Listener, bool) {
	ne := binary.NativeEndian
	family, state := m[0], m[1]
	if state != tcpListenState {
		return Listener{}, false
	}
	id := m[4:52]
	port := binary.BigEndian.Uint16(id[0:])
	var ip netip.Addr
	if family == unix.AF_INET {
		ip = netip.AddrFrom4([4]byte(id[4:8]))
	} else {
		ip = netip.AddrFrom16([16]byte(id[4:20]))
	}
	return Listener{
		Addr:        netip.AddrPortFrom(ip, port),
		AcceptQueue: ne.Uint32(m[56:]),
		Backlog:     ne.Uint32(m[60:]),
		UID:         ne.Uint32(m[64:]),
		Inode:       ne.Uint32(m[68:]),
	}, true
}

// Established lists every established TCP socket that belongs to a
// process (its inode is not 0), by inode. It walks them all: call it once,
// not per sample.
func (d *SockDiag) Established() (map[uint32]Conn, error) {
	socks, err := d.TCPSockets(1 << tcpEstablishedState)
	if err != nil {
		return nil, err
	}
	out := make(map[uint32]Conn, len(socks))
	for _, s := range socks {
		if s.State == tcpEstablishedState && s.Inode != 0 {
			out[s.Inode] = Conn{Local: s.Local, Remote: s.Remote}
		}
	}
	return out, nil
}

// TCPSockets lists every TCP socket of both families in the states of mask
// (bit 1<<state; TCP_SYN_RECV request sockets included when asked for), as
// ss -tan shows them. It walks them all: call it once per reading.
func (d *SockDiag) TCPSockets(mask uint32) ([]TCPSocket, error) {
	var out []TCPSocket
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		err := d.each(family, mask, 0, func(m []byte) {
			if len(m) < sizeofInetDiagMsg {
				return
			}
			id := m[4:52]
			addr := func(at int) netip.Addr {
				if m[0] == unix.AF_INET {
					return netip.AddrFrom4([4]byte(id[at : at+4]))
				}
				return netip.AddrFrom16([16]byte(id[at : at+16])).Unmap()
			}
			ne := binary.NativeEndian
			out = append(out, TCPSocket{State: m[1],
				Local:  netip.AddrPortFrom(addr(4), binary.BigEndian.Uint16(id[0:])),
				Remote: netip.AddrPortFrom(addr(20), binary.BigEndian.Uint16(id[2:])),
				RecvQ:  ne.Uint32(m[56:]), SendQ: ne.Uint32(m[60:]), Inode: ne.Uint32(m[68:])})
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
