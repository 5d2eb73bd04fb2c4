package sockaddr

import (
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// CheckLocal binds a socket to each source address (no port is taken) to
// learn, before any traffic, that it belongs to this machine.
func CheckLocal(addrs []netip.Addr) error {
	for _, a := range addrs {
		var sa unix.Sockaddr
		family := unix.AF_INET
		if a.Is4() {
			sa = &unix.SockaddrInet4{Addr: a.As4()}
		} else {
			family, sa = unix.AF_INET6, &unix.SockaddrInet6{Addr: a.As16()}
		}
		fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return os.NewSyscallError("socket", err)
		}
		err = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if err == nil {
			err = unix.Bind(fd, sa)
		}
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("%s is not an address of this machine (bind: %w)", a, err)
		}
	}
	return nil
}
