package target

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// forwardDialTimeout bounds the dial to the fixed upstream.
const forwardDialTimeout = 5 * time.Second

// forward joins an accepted connection to a new one to cfg.ForwardTo and
// copies bytes both ways. A half-close is passed on: when one side stops
// sending, the other is told with a FIN and may still answer. Each forwarded
// connection costs two descriptors, which is the lesson.
//
// The copy goes through a buffer on purpose: io.Copy between two TCP
// connections uses splice(2) on Linux, and every splice waiting for data
// holds a pipe, two more descriptors per direction; an idle forwarded
// connection would cost six.
func (s *server) forward(c net.Conn) {
	up, err := net.DialTimeout("tcp", s.cfg.ForwardTo, forwardDialTimeout)
	if err != nil {
		s.c.DialErrors.Add(1)
		if (errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)) && s.firstEMFILE.CompareAndSwap(false, true) {
			s.recordFirstEMFILE(err, "dial")
		}
		return // the caller closes c: the client sees its connection closed
	}
	s.c.Forwarded.Add(1)
	s.mu.Lock()
	s.conns[up] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, up)
		s.mu.Unlock()
		up.Close()
	}()
	var wg sync.WaitGroup
	wg.Go(func() { pipe(up, c) })
	pipe(c, up)
	wg.Wait()
}

// pipe copies src to dst until src ends, then half-closes dst. After an
// error (a reset) nothing more can flow either way, so both are closed.
func pipe(dst, src net.Conn) {
	_, err := io.CopyBuffer(writerOnly{dst}, readerOnly{src}, make([]byte, 8<<10))
	if tc, ok := dst.(*net.TCPConn); ok && err == nil {
		tc.CloseWrite()
		return
	}
	dst.Close()
	src.Close()
}

// readerOnly and writerOnly hide ReadFrom and WriteTo, so io.CopyBuffer
// reads and writes instead of splicing.
type readerOnly struct{ io.Reader }
type writerOnly struct{ io.Writer }
