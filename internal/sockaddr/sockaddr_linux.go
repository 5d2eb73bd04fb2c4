// Package sockaddr converts between netip.AddrPort and the socket addresses
// of golang.org/x/sys/unix, raw ones included: the generator and the
// built-in target both read addresses the kernel wrote into a reused
// buffer, so that a connection costs no allocation.
package sockaddr

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// To is the socket address for ap and its address family; an IPv4-mapped
// address is IPv4.
func To(ap netip.AddrPort) (unix.Sockaddr, int) {
	if ap.Addr().Is4() || ap.Addr().Is4In6() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}, unix.AF_INET
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}, unix.AF_INET6
}

// From is the address of sa; zero for other families.
func From(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// FromRaw is the address the kernel wrote into rsa (accept4, getsockname);
// zero for other families.
func FromRaw(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), ntohs(sa.Port))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), ntohs(sa.Port))
	}
	return netip.AddrPort{}
}

// ntohs reads a port as the kernel stores it: network byte order.
func ntohs(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// ToRaw is ap as the kernel takes it (connect, bind), with its length and
// address family; an IPv4-mapped address is IPv4.
func ToRaw(ap netip.AddrPort) (unix.RawSockaddrAny, uint32, int) {
	var rsa unix.RawSockaddrAny
	port := ap.Port()
	if ap.Addr().Is4() || ap.Addr().Is4In6() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&rsa))
		sa.Family, sa.Addr, sa.Port = unix.AF_INET, ap.Addr().Unmap().As4(), ntohs(port)
		return rsa, unix.SizeofSockaddrInet4, unix.AF_INET
	}
	sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&rsa))
	sa.Family, sa.Addr, sa.Port = unix.AF_INET6, ap.Addr().As16(), ntohs(port)
	return rsa, unix.SizeofSockaddrInet6, unix.AF_INET6
}
