package target

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestGreetingRoundTrip(t *testing.T) {
	tests := []struct {
		line string
		seq  uint32
		ok   bool
	}{
		{"connlimit 1 127.0.0.1:5000", 1, true},
		{"connlimit 4294967295 [::1]:1\n", 4294967295, true},
		{"connlimit 4294967296 x", 0, false},
		{"connlimit  1 x", 0, false},
		{"connlimit 12", 0, false},
		{"connlimit x1 y", 0, false},
		{"HTTP/1.1 200 OK", 0, false},
		{"", 0, false},
	}
	for _, tc := range tests {
		seq, ok := ParseGreeting([]byte(tc.line))
		if seq != tc.seq || ok != tc.ok {
			t.Errorf("ParseGreeting(%q) = %d, %v; want %d, %v", tc.line, seq, ok, tc.seq, tc.ok)
		}
	}
	line := AppendGreeting(nil, 77, netip.MustParseAddrPort("127.0.0.1:40000"))
	if seq, ok := ParseGreeting(line); !ok || seq != 77 || string(line) != "connlimit 77 127.0.0.1:40000\n" {
		t.Errorf("AppendGreeting gave %q, parsed %d %v", line, seq, ok)
	}
}

func FuzzParseGreeting(f *testing.F) {
	f.Add([]byte("connlimit 5 127.0.0.1:1\n"))
	f.Add([]byte("connlimit 99999999999 x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, ok := ParseGreeting(b)
		if !ok {
			return
		}
		again, ok2 := ParseGreeting(AppendGreeting(nil, uint64(seq), netip.AddrPort{}))
		if !ok2 || again != seq {
			t.Fatalf("%q parsed as %d but its re-encoding parses as %d, %v", b, seq, again, ok2)
		}
	})
}

func TestReadEventsRejectsGarbage(t *testing.T) {
	var got []Event
	err := ReadEvents(strings.NewReader(`{"event":"ready","pid":5}`+"\n"+`not json`+"\n"), func(ev Event) { got = append(got, ev) })
	if err == nil || !strings.Contains(err.Error(), "line 2") || len(got) != 1 || got[0].PID != 5 {
		t.Errorf("err %v, events %+v", err, got)
	}
	if err := ReadEvents(strings.NewReader(`{"pid":5}`), func(Event) {}); err == nil {
		t.Error("an event without a type was accepted")
	}
}

func FuzzReadEvents(f *testing.F) {
	f.Add([]byte(`{"event":"stats","accepted":3,"accept_errors":1,"open":2,"fds_open":12}` + "\n"))
	f.Add([]byte(`{"event":"first_emfile","other_fds":[{"fd":0,"kind":"stdio","target":"/dev/null"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = ReadEvents(bytes.NewReader(b), func(ev Event) {
			if ev.Type == "" {
				t.Fatal("event without a type delivered")
			}
		})
	})
}

// syncBuffer lets the test read the events Serve writes from its goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) events(t *testing.T) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var evs []Event
	if err := ReadEvents(bytes.NewReader(s.b.Bytes()), func(ev Event) { evs = append(evs, ev) }); err != nil {
		t.Fatal(err)
	}
	return evs
}

// serve runs Serve in this process until stop is called, and returns its address.
func serve(t *testing.T, cfg Config) (addr string, events *syncBuffer, stop func() error) {
	t.Helper()
	events = &syncBuffer{}
	cfg.Events, cfg.EventsFd, cfg.StatsInterval = events, -1, 10*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, cfg) }()
	for deadline := time.Now().Add(5 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if evs := events.events(t); len(evs) > 0 {
			addr = evs[0].Addr
		}
	}
	stop = func() error { cancel(); return <-done }
	if addr == "" {
		stop()
		t.Fatal("no ready event")
	}
	return addr, events, stop
}

func TestServeGreetsEchoesAndReports(t *testing.T) {
	addr, events, stop := serve(t, Config{})
	for i := 1; i <= 3; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if seq, ok := ParseGreeting([]byte(line)); !ok || int(seq) != i || !strings.Contains(line, c.LocalAddr().String()) {
			t.Errorf("greeting %q on connection %d from %s", line, i, c.LocalAddr())
		}
		c.Write([]byte("ping\n"))
		if echo, _ := r.ReadString('\n'); echo != "ping\n" {
			t.Errorf("echo %q", echo)
		}
		c.Close()
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	evs := events.events(t)
	last := evs[len(evs)-1]
	if last.Type != EventExit || last.Accepted != 3 || last.Open != 0 || last.AcceptErrors != 0 {
		t.Errorf("last event %+v", last)
	}
}

// A silent target accepts and echoes but sends nothing first.
func TestServeSilent(t *testing.T) {
	addr, events, stop := serve(t, Config{Behavior: Behavior{Silent: true}})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 64)
	if n, err := c.Read(buf); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %q, %v from a silent target: want nothing until the deadline", buf[:n], err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("ping\n"))
	if n, err := c.Read(buf); string(buf[:n]) != "ping\n" {
		t.Fatalf("echo %q, %v", buf[:n], err)
	}
	c.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if evs := events.events(t); evs[len(evs)-1].Accepted != 1 {
		t.Errorf("last event %+v, want 1 accepted", evs[len(evs)-1])
	}
}

// At its connection cap with policy wait the target stops accepting, and
// takes the next queued client as soon as a connection ends.
func TestCapWaitResumes(t *testing.T) {
	addr, events, stop := serve(t, Config{Behavior: Behavior{MaxConns: 2, OnMaxConns: CapWait}})
	greeted := func(c net.Conn, within time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(within))
		line, err := bufio.NewReader(c).ReadString('\n')
		_, ok := ParseGreeting([]byte(line))
		return err == nil && ok
	}
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	if !greeted(conns[0], 5*time.Second) || !greeted(conns[1], 5*time.Second) {
		t.Fatal("the first two connections were not greeted")
	}
	if greeted(conns[2], 200*time.Millisecond) {
		t.Fatal("the third connection was accepted above the cap of 2")
	}
	conns[0].Close()
	if !greeted(conns[2], 5*time.Second) {
		t.Fatal("the third connection was not accepted once a slot was freed")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if evs := events.events(t); evs[len(evs)-1].Accepted != 3 {
		t.Errorf("exit event %+v, want 3 accepted", evs[len(evs)-1])
	}
}
