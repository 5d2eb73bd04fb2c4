package limits

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
)

// TCP states as the kernel numbers them (include/net/tcp_states.h).
const (
	TCPEstablished = 1
	TCPSynRecv     = 3
	TCPFinWait2    = 5
	TCPTimeWait    = 6
	TCPListen      = 10
	// TCPAllStates is the sock_diag mask for every state.
	TCPAllStates = 0xfff
)

// TCPSocket is one TCP socket as sock_diag reports it. For a listener
// RecvQ is its accept queue and SendQ its backlog; Inode is 0 for a socket
// no process holds (TIME_WAIT, a connection not yet accepted).
type TCPSocket struct {
	State         uint8
	Local, Remote netip.AddrPort
	RecvQ, SendQ  uint32
	Inode         uint32
}

// OtherSocketInodes are the inodes of this network namespace's UDP and unix
// sockets (/proc/net/udp, udp6, unix), to tell a process's sockets apart.
type OtherSocketInodes struct {
	UDP, Unix map[uint64]bool
}

// ReadOtherSocketInodes reads them with prometheus/procfs; a file that
// cannot be read leaves its map empty.
func ReadOtherSocketInodes(procRoot string) OtherSocketInodes {
	o := OtherSocketInodes{UDP: map[uint64]bool{}, Unix: map[uint64]bool{}}
	fs, err := procfs.NewFS(procRoot)
	if err != nil {
		return o
	}
	if u, err := fs.NetUDP(); err == nil {
		for _, l := range u {
			o.UDP[l.Inode] = true
		}
	}
	if u, err := fs.NetUDP6(); err == nil {
		for _, l := range u {
			o.UDP[l.Inode] = true
		}
	}
	if u, err := fs.NetUNIX(); err == nil {
		for _, l := range u.Rows {
			o.Unix[l.Inode] = true
		}
	}
	return o
}

// SocketInode is the inode of a /proc/PID/fd link "socket:[N]".
func SocketInode(link string) (uint64, bool) {
	num, ok := strings.CutPrefix(link, "socket:[")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(num, "]"), 10, 64)
	return n, err == nil
}
