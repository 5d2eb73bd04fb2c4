package limits

import (
	"cmp"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Conn is an established TCP connection's two ends, as its socket sees them.
type Conn struct {
	Local, Remote netip.AddrPort
}

// Split is what a process's established TCP connections are for: the ones
// it accepted on a listening port, and the ones it dialed out. A process
// that dials one out for each it accepts (HAProxy in TCP mode, socat,
// docker-proxy, a sidecar) is a forwarder: each connection costs it two
// descriptors.
type Split struct {
	Accepted, Dialed int
	// DialedTo is where most of the dialed ones go.
	DialedTo netip.AddrPort
}

// SplitSockets sorts pid's sockets (its /proc/PID/fd links) by the
// connections in conns (from SockDiag.Established): local port port means
// accepted, anything else dialed.
func SplitSockets(procRoot string, pid int, port uint16, conns map[uint32]Conn) (Split, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return Split{}, err
	}
	var s Split
	to := map[netip.AddrPort]int{}
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		num, ok := strings.CutPrefix(link, "socket:[")
		if !ok {
			continue
		}
		inode, err := strconv.ParseUint(strings.TrimSuffix(num, "]"), 10, 32)
		if err != nil {
			continue
		}
		c, ok := conns[uint32(inode)]
		switch {
		case !ok:
		case c.Local.Port() == port:
			s.Accepted++
		default:
			s.Dialed++
			to[c.Remote]++
		}
	}
	if len(to) > 0 {
		s.DialedTo = slices.MaxFunc(slices.Collect(maps.Keys(to)), func(a, b netip.AddrPort) int {
			return cmp.Or(cmp.Compare(to[a], to[b]), b.Compare(a))
		})
	}
	return s, nil
}
