package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/connlimit/connlimit/internal/sockaddr"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rawListener listens on 127.0.0.1 with the given backlog and never accepts,
// so connections pile up in the kernel's accept queue.
func rawListener(t *testing.T, backlog int) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if backlog >= 0 {
		if err := unix.Listen(fd, backlog); err != nil {
			t.Fatal(err)
		}
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return sockaddr.From(sa)
}

// greeter accepts everything and runs fn on each connection, in a goroutine
// of its own, until the test ends; the connections are closed then.
func greeter(t *testing.T, fn func(net.Conn)) (netip.AddrPort, func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		acceptor, handlers sync.WaitGroup
		mu                 sync.Mutex
		conns              []net.Conn
	)
	acceptor.Go(func() {
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil { // EMFILE when a test lowers the limit: the clients share it
				time.Sleep(5 * time.Millisecond)
				continue
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			handlers.Go(func() { fn(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		acceptor.Wait()
		for _, c := range conns {
			c.Close()
		}
		handlers.Wait()
	})
	accepted := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
	return netip.MustParseAddrPort(ln.Addr().String()), accepted
}

func run(t *testing.T, cfg Config) (*Generator, map[Outcome]int) {
	t.Helper()
	cfg.LocalAddrs = true
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	if err := g.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	return g, count(t, g)
}

// count tallies outcomes and checks the invariants every run must keep.
func count(t *testing.T, g *Generator) map[Outcome]int {
	t.Helper()
	got := map[Outcome]int{}
	for _, r := range g.Results() {
		if r.Outcome == Pending {
			t.Errorf("attempt %d has no outcome", r.Seq)
		}
		got[r.Outcome]++
	}
	s := g.Snapshot()
	if sum := s.Served + s.Queued + s.Failed; sum != s.Attempted || int(s.Attempted) != len(g.Results()) {
		t.Errorf("counters: served+queued+failed = %d, attempted = %d, results = %d", sum, s.Attempted, len(g.Results()))
	}
	if s.Connecting != 0 {
		t.Errorf("connecting = %d after Open", s.Connecting)
	}
	return got
}

func TestOutcomes(t *testing.T) {
	greet := func(c net.Conn) { c.Write([]byte("connlimit 1 x\n")) }
	tests := []struct {
		name   string
		target func(t *testing.T) netip.AddrPort
		parse  func([]byte) (uint32, bool)
		want   map[Outcome]int
	}{
		{"served", func(t *testing.T) netip.AddrPort { a, _ := greeter(t, greet); return a }, nil,
			map[Outcome]int{Served: 50}},
		{"greeting in pieces", func(t *testing.T) netip.AddrPort {
			a, _ := greeter(t, func(c net.Conn) {
				c.Write([]byte("conn"))
				time.Sleep(5 * time.Millisecond)
				c.Write([]byte("limit 7 x\n"))
			})
			return a
		}, func(b []byte) (uint32, bool) { return 7, string(b) == "connlimit 7 x" }, map[Outcome]int{Served: 50}},
		{"not a greeting", func(t *testing.T) netip.AddrPort { a, _ := greeter(t, greet); return a },
			func([]byte) (uint32, bool) { return 0, false }, map[Outcome]int{Other: 50}},
		{"closed", func(t *testing.T) netip.AddrPort { a, _ := greeter(t, func(c net.Conn) { c.Close() }); return a }, nil,
			map[Outcome]int{Closed: 50}},
		{"refused", func(t *testing.T) netip.AddrPort { return rawListener(t, -1) }, nil,
			map[Outcome]int{Refused: 50}},
		// backlog 3 holds 4 connections; the kernel drops the other SYNs.
		{"accept queue full", func(t *testing.T) netip.AddrPort { return rawListener(t, 3) }, nil,
			map[Outcome]int{Queued: 4, ConnectTimeout: 46}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, got := run(t, Config{Target: tc.target(t), Connections: 50, Concurrency: 64,
				ConnectTimeout: 300 * time.Millisecond, GreetingTimeout: 300 * time.Millisecond, Probe: GreetingProbe{Parse: tc.parse}})
			if len(got) != len(tc.want) {
				t.Errorf("outcomes = %v, want %v", got, tc.want)
			}
			for o, n := range tc.want {
				if got[o] != n {
					t.Errorf("%s = %d, want %d (all: %v)", o, got[o], n, got)
				}
			}
			for _, r := range g.Results() {
				if r.Outcome == Other && r.Errno != syscall.EPROTO {
					t.Errorf("attempt %d: other with errno %v, want EPROTO", r.Seq, r.Errno)
				}
				if r.Outcome == Refused && r.Errno != syscall.ECONNREFUSED {
					t.Errorf("attempt %d: refused with errno %v", r.Seq, r.Errno)
				}
			}
		})
	}
}

func TestExactCountDistinctPorts(t *testing.T) {
	addr, accepted := greeter(t, func(c net.Conn) { c.Write([]byte("hi\n")) })
	const n = 1500
	g, got := run(t, Config{Target: addr, Connections: n, Concurrency: 100})
	if got[Served] != n {
		t.Fatalf("served = %d, want %d (%v)", got[Served], n, got)
	}
	ports := map[uint16]bool{}
	for _, r := range g.Results() {
		if r.Local().Addr() != netip.MustParseAddr("127.0.0.1") || ports[r.Local().Port()] {
			t.Fatalf("attempt %d: local %v repeated or wrong", r.Seq, r.Local())
		}
		ports[r.Local().Port()] = true
		if r.Connect <= 0 || r.Greeting <= 0 {
			t.Fatalf("attempt %d: connect %v greeting %v", r.Seq, r.Connect, r.Greeting)
		}
	}
	if s := g.Snapshot(); s.Open != n {
		t.Errorf("open = %d, want %d", s.Open, n)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if s := g.Snapshot(); s.Open != 0 {
		t.Errorf("open after Close = %d", s.Open)
	}
	// The server must have seen exactly n connections: never more than asked.
	deadline := time.Now().Add(2 * time.Second)
	for accepted() != n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if a := accepted(); a != n {
		t.Errorf("server accepted %d, want %d", a, n)
	}
}

func TestConcurrencyBound(t *testing.T) {
	addr := rawListener(t, 0) // accepts one into the queue, drops the rest: connects stay in flight
	g, err := New(Config{Target: addr, Connections: 40, Concurrency: 7, ConnectTimeout: 200 * time.Millisecond,
		GreetingTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var maxSeen int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			maxSeen = max(maxSeen, g.Snapshot().Connecting)
			time.Sleep(time.Millisecond)
		}
	})
	err = g.Open(context.Background())
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	count(t, g)
	if maxSeen > 7 || maxSeen < 2 {
		t.Errorf("connects in flight peaked at %d, want 2..7", maxSeen)
	}
}

func TestCancelAccountsForEveryAttempt(t *testing.T) {
	addr := rawListener(t, 0)
	g, err := New(Config{Target: addr, Connections: 1000, Concurrency: 20, ConnectTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if err := g.Open(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Open = %v, want deadline exceeded", err)
	}
	got := count(t, g)
	if got[Other] == 0 || len(g.Results()) >= 1000 {
		t.Errorf("after cancel: %v of %d attempts", got, len(g.Results()))
	}
}

func TestClientFDLimit(t *testing.T) {
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	addr, _ := greeter(t, func(c net.Conn) { c.Write([]byte("hi\n")) })
	// Leave room for about 20 client sockets (the greeter needs one fd each too).
	lim := uint64(openFDs(t) + 40)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: lim, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	defer unix.Setrlimit(unix.RLIMIT_NOFILE, &old)
	// Paced, so the server in this same process accepts each connection
	// before the next socket is opened: the two sides share the limit.
	g, got := run(t, Config{Target: addr, Connections: 100, Concurrency: 10, Rate: 500})
	if got[ClientFDLimit] == 0 || got[Served] == 0 {
		t.Fatalf("outcomes %v: want some served then client-fd-limit", got)
	}
	for _, r := range g.Results() {
		if r.Outcome == ClientFDLimit && (r.Errno != syscall.EMFILE || r.FD != -1) {
			t.Fatalf("attempt %d: %v errno %v fd %d", r.Seq, r.Outcome, r.Errno, r.FD)
		}
	}
}

// A generator whose Epoch lies in the past (a worker that waited for its
// turn) still paces its attempts from when it opens, rather than making up
// for the time before in one burst; Start still counts from the Epoch.
func TestRateCountsFromOpen(t *testing.T) {
	addr, _ := greeter(t, func(c net.Conn) { c.Write([]byte("hi\n")) })
	epoch := time.Now().Add(-2 * time.Second)
	g, got := run(t, Config{Target: addr, Connections: 20, Rate: 200, Epoch: epoch})
	if got[Served] != 20 {
		t.Fatalf("outcomes %v", got)
	}
	res := g.Results()
	if first := res[0].Start; first < 2*time.Second {
		t.Errorf("first attempt started %v after the epoch, which was 2s before Open", first)
	}
	// 19 intervals of 5 ms at least; a burst would start all 20 at once.
	if span := res[19].Start - res[0].Start; span < 19*5*time.Millisecond {
		t.Errorf("20 attempts at 200/s started within %v", span)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestProbes(t *testing.T) {
	echo := func(c net.Conn) { io.Copy(c, c) }
	upper := func(c net.Conn) {
		b := make([]byte, 1024)
		n, _ := c.Read(b)
		c.Write(bytes.ToUpper(b[:n]))
	}
	maxClients := func(c net.Conn) {
		c.Write([]byte("-ERR max number of clients reached\r\n"))
		c.Close()
	}
	silent := func(net.Conn) {}
	closeLater := func(c net.Conn) {
		c.Write([]byte("connlimit 1 x\n"))
		time.Sleep(50 * time.Millisecond)
		c.Close()
	}
	httpServer := func(status int) func(t *testing.T) netip.AddrPort {
		return func(t *testing.T) netip.AddrPort {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
			t.Cleanup(srv.Close)
			return netip.MustParseAddrPort(srv.Listener.Addr().String())
		}
	}
	with := func(fn func(net.Conn)) func(t *testing.T) netip.AddrPort {
		return func(t *testing.T) netip.AddrPort { a, _ := greeter(t, fn); return a }
	}
	// A TLS server on a test certificate; refuse makes it turn every
	// ClientHello away (crypto/tls then sends an internal_error alert).
	tlsServer := func(refuse bool) func(t *testing.T) netip.AddrPort {
		return func(t *testing.T) netip.AddrPort {
			conf := httptest.NewUnstartedServer(nil)
			conf.StartTLS() // only for its certificate
			cert := conf.TLS.Certificates
			conf.Close()
			sc := &tls.Config{Certificates: cert}
			if refuse {
				sc.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return nil, errors.New("full") }
			}
			return with(func(c net.Conn) {
				tc := tls.Server(c, sc)
				if tc.Handshake() == nil {
					io.Copy(io.Discard, tc) // held until the client goes
				}
			})(t)
		}
	}
	bigEcho := NewEchoProbe(65536) // the most --payload takes, after a greeting line
	bigEcho.AfterLine = true
	// slowEcho holds back the echo's last byte: the probe has all but one
	// byte of it, and the greeting, waiting at once.
	slowEcho := func(c net.Conn) {
		c.Write([]byte("connlimit 1 x\n"))
		b := make([]byte, 65536)
		if _, err := io.ReadFull(c, b); err != nil {
			return
		}
		c.Write(b[:len(b)-1])
		time.Sleep(50 * time.Millisecond)
		c.Write(b[len(b)-1:])
	}
	tests := []struct {
		name   string
		target func(t *testing.T) netip.AddrPort
		probe  Probe
		want   Outcome
		status uint16
		reason string
	}{
		{"echo", with(echo), NewEchoProbe(100), Served, 0, ""},
		{"greeting and the largest echo", with(slowEcho), bigEcho, Served, 0, ""},
		{"echo altered", with(upper), NewEchoProbe(10), Corrupt, 0, "echo differs at byte 0: ABCDEFGHIJ"},
		{"http 200", httpServer(200), NewHTTPProbe("localhost", "/"), Served, 200, ""},
		{"http 404 is an answer", httpServer(404), NewHTTPProbe("localhost", "/x"), Served, 404, ""},
		{"http 503 is a refusal", httpServer(503), NewHTTPProbe("localhost", "/"), Closed, 503, "HTTP/1.1 503 Service Unavailable"},
		{"http to a greeter", with(func(c net.Conn) { c.Write([]byte("connlimit 1 x\n")) }), NewHTTPProbe("h", "/"), Other, 0, "not an HTTP status line: connlimit 1 x"},
		{"connect: max clients line then close", with(maxClients), ConnectProbe{}, Closed, 0, "-ERR max number of clients reached"},
		{"connect: held open", with(silent), ConnectProbe{}, Served, 0, ""},
		{"greeting, then closed during the hold", with(closeLater), GreetingProbe{}, Closed, 0, ""},
		{"tls handshake", tlsServer(false), NewTLSProbe("example.com"), Served, 0, ""},
		{"tls alert is a refusal", tlsServer(true), NewTLSProbe(""), Closed, 0, "TLS alert: internal error"},
		{"tls to a greeter", with(func(c net.Conn) { c.Write([]byte("connlimit 1 x\n")) }), NewTLSProbe(""), Other, 0,
			"tls: first record does not look like a TLS handshake"},
		{"tls: closed before the handshake", with(func(c net.Conn) { c.Close() }), NewTLSProbe(""), Closed, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := New(Config{Target: tc.target(t), Connections: 20, Concurrency: 20,
				ConnectTimeout: time.Second, GreetingTimeout: time.Second, Probe: tc.probe})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if err := g.Open(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := g.Hold(context.Background(), 300*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			got := count(t, g)
			if got[tc.want] != 20 {
				t.Fatalf("outcomes %v, want 20 %s", got, tc.want)
			}
			for i, r := range g.Results() {
				if r.Status != tc.status || g.Attempts().At(i).Reason != tc.reason {
					t.Fatalf("attempt %d: status %d reason %q, want %d %q", r.Seq, r.Status, g.Attempts().At(i).Reason, tc.status, tc.reason)
				}
			}
			if s := g.Snapshot(); tc.want == Served && s.Open != 20 || tc.want != Served && s.Open != 0 {
				t.Errorf("open = %d with every attempt %s", s.Open, tc.want)
			}
		})
	}
}

func TestParseStatusLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		code uint16
		ok   bool
	}{
		{"HTTP/1.1 200 OK\r", 200, true},
		{"HTTP/1.0 503", 503, true},
		{"HTTP/2 404 Not Found", 404, true},
		{"HTTP/1.1 99 Low", 0, false},
		{"HTTP/1.1 2000 x", 0, false},
		{"HTTP/1.1 abc", 0, false},
		{"SSH-2.0-OpenSSH", 0, false},
		{"", 0, false},
	} {
		code, ok := ParseStatusLine([]byte(tc.line))
		if code != tc.code || ok != tc.ok {
			t.Errorf("ParseStatusLine(%q) = %d, %v; want %d, %v", tc.line, code, ok, tc.code, tc.ok)
		}
	}
}

func FuzzProbeJudges(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\n"))
	f.Add([]byte("connlimit 3 x\n"))
	f.Add([]byte("abcdefghij"))
	probes := []Probe{NewHTTPProbe("h", "/"), GreetingProbe{}, NewEchoProbe(10), ConnectProbe{}}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range probes {
			j := p.Judge(b)
			if !j.More && j.Outcome != Served && j.Outcome != Closed && j.Outcome != Corrupt && j.Outcome != Other {
				t.Fatalf("%T judged %q as %v", p, b, j.Outcome)
			}
		}
	})
}

// A stream leaves in segments of at most one MSS: TCP_INFO counts the data
// segments of each connection. With TCP timestamps on (Linux's default),
// 12 bytes of every segment go to the option: MSS 1460 carries 1448.
func TestSegments(t *testing.T) {
	echo := func(c net.Conn) { io.Copy(c, c) }
	for _, tc := range []struct {
		payload, mss int
	}{{5000, 1460}, {5000, 1000}, {3000, 536}} {
		t.Run(fmt.Sprintf("%d bytes at MSS %d", tc.payload, tc.mss), func(t *testing.T) {
			addr, _ := greeter(t, echo)
			g, got := run(t, Config{Target: addr, Connections: 5, Probe: NewEchoProbe(tc.payload), MSS: tc.mss, Segments: true})
			if got[Served] != 5 {
				t.Fatalf("outcomes %v", got)
			}
			used := tc.mss - 12
			want := uint32((tc.payload + used - 1) / used)
			for i, s := range g.Attempts().Segs {
				if int(s.MSS) != used || s.DataSegsOut != want || s.DataSegsIn != want || s.BytesSent != uint32(tc.payload) ||
					s.BytesReceived != uint32(tc.payload) || s.Retrans != 0 {
					t.Errorf("connection %d: %+v; want MSS %d, %d data segments each way, %d bytes", i, s, used, want, tc.payload)
				}
			}
		})
	}
}

// BenchmarkOpen measures the generator's hot path: non-blocking connect,
// epoll, classification, against a listener that never accepts (the kernel
// completes the handshakes), with the connect probe. Reported per connection.
func BenchmarkOpen(b *testing.B) {
	const n = 2000
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
		unix.Listen(fd, 4096)
		sa, _ := unix.Getsockname(fd)
		g, err := New(Config{Target: sockaddr.From(sa), Connections: n, Probe: ConnectProbe{}})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := g.Open(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		g.Close()
		unix.Close(fd)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/conn")
}

func BenchmarkJudgeGreeting(b *testing.B) {
	p := GreetingProbe{Parse: func(line []byte) (uint32, bool) { return 1, len(line) > 0 }}
	reply := []byte("connlimit 12345 127.0.0.1:40000\n")
	b.ReportAllocs()
	for b.Loop() {
		if j := p.Judge(reply); j.Outcome != Served {
			b.Fatal(j)
		}
	}
}

// Config.Settle ends the wait for answers that cannot come: against a
// listener that never accepts, with a greeting timeout of an hour, Open
// returns once Settle says so, every connection Queued, and Settle was
// shown each waiting connection by its own local address.
func TestSettle(t *testing.T) {
	for _, yesAfter := range []int{0, 3} {
		addr := rawListener(t, 64)
		calls := 0
		var seen []Waiting
		g, err := New(Config{Target: addr, Connections: 20, GreetingTimeout: time.Hour, LocalAddrs: yesAfter > 0,
			Settle: func(w []Waiting) bool {
				calls++
				seen = w
				return calls > yesAfter
			}})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		got := count(t, g)
		if got[Queued] != 20 || calls != yesAfter+1 || len(seen) != 20 {
			t.Errorf("yes after %d calls: outcomes %v, %d calls, %d shown: want 20 queued", yesAfter, got, calls, len(seen))
		}
		locals := map[netip.AddrPort]bool{}
		for _, w := range seen {
			if !w.Local.IsValid() || w.Local.Port() == 0 || w.Dst != 0 {
				t.Errorf("waiting %+v: want its local address and destination 0", w)
			}
			locals[w.Local] = true
		}
		if len(locals) != 20 {
			t.Errorf("%d distinct local addresses, want 20", len(locals))
		}
		g.Close()
	}
}
