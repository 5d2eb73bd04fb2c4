package limits

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listenBacklog opens a listener on 127.0.0.1 with an exact backlog that
// never accepts, so the test controls the accept queue.
func listenBacklog(t *testing.T, backlog int) (fd int, port uint16) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, uint16(sa.(*unix.SockaddrInet4).Port)
}

func TestSockDiagAcceptQueue(t *testing.T) {
	_, port := listenBacklog(t, 4)
	d, err := OpenSockDiag()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	kv := OpenKernelView(DefaultProcRoot)
	defer kv.Close()
	if kv.Unavailable != nil {
		t.Fatal(kv.Unavailable)
	}

	dial := func(n int) (ok int) {
		for range n {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), port).String(), 200*time.Millisecond)
			if err != nil {
				continue
			}
			t.Cleanup(func() { c.Close() })
			ok++
		}
		return ok
	}
	queue := func() Listener {
		t.Helper()
		ls, err := d.Listeners(port)
		if err != nil || len(ls) != 1 {
			t.Fatalf("Listeners(%d) = %+v, %v; want one", port, ls, err)
		}
		return ls[0]
	}
	if l := queue(); l.AcceptQueue != 0 || l.Backlog != 4 || l.Inode == 0 || l.Addr.Port() != port {
		t.Fatalf("fresh listener = %+v, want queue 0, backlog 4, an inode", l)
	}
	if ok := dial(3); ok != 3 {
		t.Fatalf("%d of 3 connects succeeded", ok)
	}
	if l := queue(); l.AcceptQueue != 3 {
		t.Fatalf("accept queue = %d after 3 unaccepted connects, want 3", l.AcceptQueue)
	}
	// The queue holds backlog+1; the kernel drops the SYNs of the rest.
	if ok := dial(4); ok != 2 {
		t.Fatalf("%d of 4 more connects succeeded, want 2 (queue full at backlog+1 = 5)", ok)
	}
	s := kv.Sample(port)
	if s.Listener == nil || s.Listener.AcceptQueue != 5 {
		t.Fatalf("sample listener = %+v, want accept queue 5", s.Listener)
	}
	// Host namespace: other traffic may add, never subtract.
	if s.TCPExt.ListenOverflows < 2 || s.TCPExt.ListenDrops < 2 {
		t.Errorf("TcpExt growth = %+v, want ListenOverflows and ListenDrops >= 2 (two dropped connects)", s.TCPExt)
	}
	if all, err := d.Listeners(0); err != nil || len(all) == 0 {
		t.Errorf("Listeners(0) = %d listeners, %v", len(all), err)
	}
}

// parseDiag reads netlink datagrams from the kernel: malformed ones must be
// refused, never read past.
// diagMessage builds the kernel's answer for a listener on 127.0.0.1:8080
// (sequence 7) with accept queue 3, backlog 4096 and inode 99.
func diagMessage() []byte {
	msg := make([]byte, sizeofNlMsghdr+sizeofInetDiagMsg)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint32(msg[8:], 7)
	body := msg[sizeofNlMsghdr:]
	body[0], body[1] = unix.AF_INET, tcpListenState
	binary.BigEndian.PutUint16(body[4:], 8080)
	copy(body[8:], []byte{127, 0, 0, 1})
	binary.NativeEndian.PutUint32(body[56:], 3)
	binary.NativeEndian.PutUint32(body[60:], 4096)
	binary.NativeEndian.PutUint32(body[68:], 99)
	return msg
}

func FuzzParseDiag(f *testing.F) {
	msg := diagMessage()
	f.Add(msg, uint16(8080))
	done := make([]byte, sizeofNlMsghdr+4)
	binary.NativeEndian.PutUint32(done[0:], uint32(len(done)))
	binary.NativeEndian.PutUint16(done[4:], unix.NLMSG_DONE)
	binary.NativeEndian.PutUint32(done[8:], 7)
	f.Add(append(append([]byte{}, msg...), done...), uint16(0))
	f.Fuzz(func(t *testing.T, b []byte, port uint16) {
		var out []Listener
		_, _ = parseDiag(b, 7, listenersOn(port, &out))
		for _, l := range out {
			if port != 0 && l.Addr.Port() != port {
				t.Fatalf("listener %v on another port than %d", l.Addr, port)
			}
		}
	})
}

func TestParseDiagSample(t *testing.T) {
	msg := diagMessage()
	var out []Listener
	done, err := parseDiag(msg, 7, listenersOn(8080, &out))
	want := Listener{Addr: netip.MustParseAddrPort("127.0.0.1:8080"), AcceptQueue: 3, Backlog: 4096, Inode: 99}
	if done || err != nil || len(out) != 1 || out[0] != want {
		t.Fatalf("parseDiag = %+v, %v, %v; want %+v", out, done, err, want)
	}
	if _, err := parseDiag(msg[:20], 7, listenersOn(0, &out)); err == nil {
		t.Error("a truncated message was accepted")
	}
}

// Of five connections to a listener, the two it accepted have a file and an
// inode; Queued names exactly the three still in its accept queue, by the
// client's address.
func TestQueued(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	var clients []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	for range 2 {
		a, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
	}
	d, err := OpenSockDiag()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, err := d.Queued([]uint16{port})
	if err != nil {
		t.Fatal(err)
	}
	// The queue is first in, first out: the first two were accepted.
	want := map[ServerConn]bool{}
	for _, c := range clients[2:] {
		want[ServerConn{c.LocalAddr().(*net.TCPAddr).AddrPort(), port}] = true
	}
	if len(got) != len(want) {
		t.Fatalf("Queued = %v, want %v", got, want)
	}
	for q := range want {
		if !got[q] {
			t.Errorf("Queued = %v: %v missing", got, q)
		}
	}
	acc, err := d.Accepted([]uint16{port})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clients[:2] {
		if q := (ServerConn{c.LocalAddr().(*net.TCPAddr).AddrPort(), port}); !acc[q] || len(acc) != 2 {
			t.Errorf("Accepted = %v: want the first two, %v among them", acc, q)
		}
	}
}
