package loadgen

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"
)

// A Dialogue is a probe that answers the server more than once (a TLS
// handshake): each connection gets a Talk of its own.
type Dialogue interface {
	Probe
	Begin() Talk
}

// A Talk is one connection's side of a dialogue.
type Talk interface {
	// Step takes the bytes received since the last step (nil for the first)
	// and returns what to send next and the judgement so far.
	Step(in []byte) (out []byte, j Judgement)
	// Close ends the talk; it may be called at any time, and more than once.
	Close()
}

// TLSProbe completes a TLS handshake: a connection is served when the
// client's Finished is written. An alert from the server is a refusal in
// its words ("handshake failure"); a reset or a close is as for any probe.
// The certificate is not verified: the probe measures whether the server
// takes connections, not whom it is.
type TLSProbe struct{ conf *tls.Config }

// NewTLSProbe asks for serverName by SNI ("" sends none).
func NewTLSProbe(serverName string) TLSProbe {
	return TLSProbe{conf: &tls.Config{ServerName: serverName, InsecureSkipVerify: true,
		// One handshake per connection: resumption would skip what is measured.
		SessionTicketsDisabled: true}}
}

// Request sends nothing by itself: the ClientHello is the talk's first step.
func (TLSProbe) Request() []byte { return nil }

// Judge is never reached for a dialogue; it says a reply is needed.
func (TLSProbe) Judge([]byte) Judgement { return Judgement{More: true} }

// Begin starts a handshake for one connection.
func (p TLSProbe) Begin() Talk {
	return &tlsTalk{conf: p.conf, in: make(chan []byte), idle: make(chan struct{}), done: make(chan error, 1)}
}

// tlsTalk runs crypto/tls's blocking handshake in a goroutine of its own
// over bytes the engine hands it: the goroutine either waits in Read (idle)
// or has finished (done), so Step knows when its output is complete. The
// engine's socket stays non-blocking and is never touched here.
type tlsTalk struct {
	conf    *tls.Config
	in      chan []byte   // the server's bytes, to Read
	idle    chan struct{} // Read wants more
	done    chan error    // the handshake's result
	out     []byte        // written by the handshake; handed over at idle or done
	pending []byte        // read from in, not yet consumed
	eof     bool          // in was closed
	started bool
	over    bool
}

func (t *tlsTalk) Step(in []byte) ([]byte, Judgement) {
	switch {
	case t.over:
		return nil, Judgement{More: true}
	case !t.started:
		t.started = true
		go func() { t.done <- tls.Client(tlsPipe{t}, t.conf).Handshake() }()
	case len(in) == 0:
		return nil, Judgement{More: true}
	default:
		t.in <- append([]byte(nil), in...) // the engine reuses its buffer
	}
	select {
	case <-t.idle:
		out := t.out
		t.out = nil
		return out, Judgement{More: true}
	case err := <-t.done:
		t.over = true
		out := t.out
		t.out = nil
		return out, tlsJudgement(err)
	}
}

func (t *tlsTalk) Close() {
	if !t.started || t.over {
		t.over = true
		return
	}
	t.over = true
	close(t.in) // the handshake's Read returns EOF, and it ends
	<-t.done
}

// tlsJudgement reads the handshake's end.
func tlsJudgement(err error) Judgement {
	var op *net.OpError
	switch {
	case err == nil:
		return Judgement{Outcome: Served}
	case errors.As(err, &op) && op.Op == "remote error":
		return Judgement{Outcome: Closed, Reason: "TLS alert: " + strings.TrimPrefix(op.Err.Error(), "tls: ")}
	}
	return Judgement{Outcome: Other, Errno: syscall.EPROTO, Reason: Printable([]byte(err.Error()))}
}

// tlsPipe is the net.Conn crypto/tls talks through: reads come from the
// talk's input, writes go to its output. Only the handshake's goroutine
// calls it.
type tlsPipe struct{ t *tlsTalk }

func (p tlsPipe) Read(b []byte) (int, error) {
	t := p.t
	if len(t.pending) == 0 {
		if t.eof {
			return 0, io.EOF
		}
		t.idle <- struct{}{}
		data, ok := <-t.in
		if !ok {
			t.eof = true
			return 0, io.EOF
		}
		t.pending = data
	}
	n := copy(b, t.pending)
	t.pending = t.pending[n:]
	return n, nil
}

func (p tlsPipe) Write(b []byte) (int, error) {
	p.t.out = append(p.t.out, b...)
	return len(b), nil
}

func (tlsPipe) Close() error                     { return nil }
func (tlsPipe) LocalAddr() net.Addr              { return pipeAddr{} }
func (tlsPipe) RemoteAddr() net.Addr             { return pipeAddr{} }
func (tlsPipe) SetDeadline(time.Time) error      { return nil }
func (tlsPipe) SetReadDeadline(time.Time) error  { return nil }
func (tlsPipe) SetWriteDeadline(time.Time) error { return nil }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "tcp" }
func (pipeAddr) String() string  { return "connlimit-probe" }
