package epoll

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWait(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(p[0]), Pad: 7}
	if err := s.Ctl(unix.EPOLL_CTL_ADD, p[0], &ev); err != nil {
		t.Fatal(err)
	}
	events := make([]unix.EpollEvent, 4)
	for _, timeout := range []time.Duration{0, 20 * time.Millisecond} {
		if n, err := s.Wait(context.Background(), events, timeout); n != 0 || err != nil {
			t.Fatalf("nothing written, wait %v: %d events, %v", timeout, n, err)
		}
	}
	// A write from another goroutine ends a wait without a deadline, and
	// the next edge is seen too.
	for i := range 2 {
		done := make(chan struct{})
		go func() {
			defer close(done)
			time.Sleep(10 * time.Millisecond)
			unix.Write(p[1], []byte("x"))
		}()
		n, err := s.Wait(context.Background(), events, -1)
		<-done
		if n != 1 || err != nil || events[0].Pad != 7 {
			t.Fatalf("write %d: %d events (%+v), %v", i, n, events[:n], err)
		}
	}
}

// A context that ends stops a wait with no deadline, parked or not yet
// begun, and leaves the set usable.
func TestWaitContext(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events := make([]unix.EpollEvent, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(20 * time.Millisecond)
		cancel()
	}()
	if n, err := s.Wait(ctx, events, -1); n != 0 || err != nil {
		t.Fatalf("cancelled wait: %d, %v", n, err)
	}
	if n, err := s.Wait(ctx, events, -1); n != 0 || err != nil {
		t.Fatalf("wait on an ended context: %d, %v", n, err)
	}
	if n, err := s.Wait(context.Background(), events, 10*time.Millisecond); n != 0 || err != nil {
		t.Fatalf("wait after the cancel: %d, %v", n, err)
	}
}

func TestWaitAfterClose(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.Wait(context.Background(), make([]unix.EpollEvent, 1), time.Second); err == nil {
		t.Fatal("a closed set waited without an error")
	}
}
