package rawsock

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/connlimit/connlimit/internal/sockaddr"
	"golang.org/x/sys/unix"
)

// One loopback connection made and used only through this package.
func TestLoopbackConnection(t *testing.T) {
	ln, err := Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(ln)
	src, n, _ := sockaddr.ToRaw(netip.MustParseAddrPort("127.0.0.1:0"))
	if err := Bind(ln, &src, n); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(ln, 8); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(ln)
	if err != nil {
		t.Fatal(err)
	}
	dst, dn, _ := sockaddr.ToRaw(sockaddr.From(sa))

	pfd := []unix.PollFd{{Fd: int32(ln), Events: unix.POLLIN}}
	if ready, err := Poll(pfd, time.Millisecond); ready != 0 || err != nil {
		t.Fatalf("Poll on an idle listener = %d, %v; want 0, nil", ready, err)
	}
	var peer unix.RawSockaddrAny
	if _, err := Accept4(ln, &peer, unix.SOCK_NONBLOCK); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("Accept4 with nobody waiting: %v, want EAGAIN", err)
	}

	c, err := Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(c)
	if err := SetsockoptInt(c, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); err != nil {
		t.Fatal(err)
	}
	if v, err := unix.GetsockoptInt(c, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT); err != nil || v != 1 {
		t.Fatalf("IP_BIND_ADDRESS_NO_PORT = %d, %v after SetsockoptInt", v, err)
	}
	if err := Connect(c, &dst, dn); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		t.Fatal(err)
	}
	if ready, err := Poll(pfd, time.Second); ready != 1 || err != nil {
		t.Fatalf("Poll after connect = %d, %v; want 1", ready, err)
	}
	s, err := Accept4(ln, &peer, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if s >= 0 {
			Close(s)
		}
	}()
	local, err := unix.Getsockname(c)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sockaddr.FromRaw(&peer), sockaddr.From(local); got != want {
		t.Errorf("Accept4 wrote peer %s, the client is %s", got, want)
	}

	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(ep)
	if err := EpollCtl(ep, unix.EPOLL_CTL_ADD, c, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(c)}); err != nil {
		t.Fatal(err)
	}
	if err := EpollCtl(ep, unix.EPOLL_CTL_ADD, c, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(c)}); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("EpollCtl adding it twice: %v, want EEXIST", err)
	}
	events := make([]unix.EpollEvent, 4)
	if n, err := EpollWait(ep, events, time.Millisecond); n != 0 || err != nil {
		t.Fatalf("EpollWait before any data = %d, %v; want 0", n, err)
	}
	if n, err := Write(s, []byte("hello")); n != 5 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if n, err := EpollWait(ep, events, time.Second); n != 1 || err != nil || events[0].Fd != int32(c) {
		t.Fatalf("EpollWait after a write = %d, %v", n, err)
	}
	buf := make([]byte, 16)
	if n, err := Read(c, buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %q, %v", buf[:max(n, 0)], err)
	}
	if n, err := Read(c, buf); n != -1 || !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("Read of a drained socket = %d, %v; want -1, EAGAIN", n, err)
	}
	if err := Close(s); err != nil {
		t.Fatal(err)
	}
	if err := Close(s); !errors.Is(err, unix.EBADF) {
		t.Fatalf("second Close = %v, want EBADF", err)
	}
	s = -1
}
