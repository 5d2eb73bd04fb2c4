package target

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"sync"
	"testing"
)

// expand turns a digest into n bytes both ends can compute.
func expand(sum [32]byte, n int) []byte {
	return bytes.Repeat(sum[:], n/32+1)[:n]
}

// Bytes go through the forwarder unchanged both ways, and a half-close is
// passed on: the upstream reads to the client's EOF and still answers.
func TestForwardIntegrity(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var upWG sync.WaitGroup
	upWG.Go(func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			upWG.Go(func() {
				defer c.Close()
				b, err := io.ReadAll(c) // returns only at the client's half-close
				if err != nil {
					return
				}
				sum := sha256.Sum256(b)
				c.Write(append(sum[:], expand(sum, 300_000)...))
			})
		}
	})
	defer func() { up.Close(); upWG.Wait() }()

	addr, events, stop := serve(t, Config{ForwardTo: up.Addr().String()})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			sent := make([]byte, 1_000_000)
			rand.Read(sent)
			var w sync.WaitGroup
			w.Go(func() {
				c.Write(sent)
				c.(*net.TCPConn).CloseWrite()
			})
			back, err := io.ReadAll(c)
			w.Wait()
			if err != nil {
				t.Error(err)
				return
			}
			want := sha256.Sum256(sent)
			if len(back) != 32+300_000 || !bytes.Equal(back[:32], want[:]) || !bytes.Equal(back[32:], expand(want, 300_000)) {
				t.Errorf("%d bytes back; the upstream saw other bytes than sent, or the reply changed on the way", len(back))
			}
		})
	}
	wg.Wait()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	evs := events.events(t)
	if ev := evs[len(evs)-1]; ev.Forwarded != 4 || ev.Accepted != 4 || ev.DialErrors != 0 {
		t.Errorf("exit event %+v: want 4 accepted and forwarded", ev)
	}
}
