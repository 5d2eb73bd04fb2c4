package target

import (
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/connlimit/connlimit/internal/sockaddr"

	"golang.org/x/sys/unix"
)

// listenBacklog listens with an explicit backlog, which net.Listen does not
// offer (it always asks for net.core.somaxconn).
func listenBacklog(addr string, backlog int) (net.Listener, error) {
	fd, err := listenSocket(addr, backlog, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "listener")
	defer f.Close() // FileListener holds a dup
	return net.FileListener(f)
}

// anyBacklog asks for the most the kernel allows: listen(2) caps the
// backlog at net.core.somaxconn, which is what Go asks for.
const anyBacklog = 1 << 30

// listenSocket returns a listening TCP socket bound to addr (ip:port, or
// a name that resolves to one). flags are added to the socket type.
func listenSocket(addr string, backlog, flags int) (int, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		ta, rerr := net.ResolveTCPAddr("tcp", addr)
		if rerr != nil {
			return -1, fmt.Errorf("listen %s: want ip:port: %w", addr, err)
		}
		ap = ta.AddrPort()
	}
	if backlog <= 0 {
		backlog = anyBacklog
	}
	sa, family := sockaddr.To(ap)
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|flags, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("setsockopt SO_REUSEADDR", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen tcp %s: %w", addr, os.NewSyscallError("bind", err))
	}
	if err := unix.Listen(fd, backlog); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("listen", err)
	}
	return fd, nil
}
