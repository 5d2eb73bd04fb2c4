package loadgen

import (
	"bytes"
	"fmt"
	"strconv"
	"syscall"
)

// Probe decides when a connection counts as served: what to send once it is
// established, and how to judge what comes back. A connection that gets no
// verdict within the reply timeout is Queued.
type Probe interface {
	// Request is written once the connection is established; nil sends nothing.
	Request() []byte
	// Judge reads the bytes received so far (nil before any arrived).
	Judge(got []byte) Judgement
}

// Judgement is a probe's reading of the reply so far.
type Judgement struct {
	More      bool    // not enough bytes yet
	Outcome   Outcome // Served, Closed (an application-level refusal) or Other
	Errno     syscall.Errno
	Status    uint16 // HTTP status, when there is one
	TargetSeq uint32 // the built-in target's accept number
	Reason    string // why the target refused, in its words
}

// maxReply bounds the bytes a probe may wait for.
const maxReply = 64 << 10

// ConnectProbe counts a connection as served as soon as it is established;
// it must then stay open through the hold.
type ConnectProbe struct{}

// Request sends nothing.
func (ConnectProbe) Request() []byte { return nil }

// Judge serves at once.
func (ConnectProbe) Judge([]byte) Judgement { return Judgement{Outcome: Served} }

// GreetingProbe waits for one line from the target; Parse (may be nil)
// extracts its accept number and rejects lines that are not a greeting.
type GreetingProbe struct {
	Parse func(line []byte) (seq uint32, ok bool)
}

// Request sends nothing: the target speaks first.
func (GreetingProbe) Request() []byte { return nil }

// Judge waits for a newline.
func (p GreetingProbe) Judge(got []byte) Judgement {
	nl := bytes.IndexByte(got, '\n')
	switch {
	case nl < 0 && len(got) > 512:
		return Judgement{Outcome: Other, Errno: syscall.EPROTO, Reason: "no greeting line in 512 bytes"}
	case nl < 0:
		return Judgement{More: true}
	case p.Parse == nil:
		return Judgement{Outcome: Served}
	}
	seq, ok := p.Parse(got[:nl])
	if !ok {
		return Judgement{Outcome: Other, Errno: syscall.EPROTO, Reason: "not a greeting: " + Printable(got[:nl])}
	}
	return Judgement{Outcome: Served, TargetSeq: seq}
}

// EchoProbe sends a payload and wants it back unchanged; bytes that differ
// make the attempt Corrupt. With AfterLine, a first line (the built-in
// target's greeting, checked by Parse when set) comes before the echo.
type EchoProbe struct {
	Payload   []byte
	AfterLine bool
	Parse     func(line []byte) (seq uint32, ok bool)
}

// NewEchoProbe makes a payload of n bytes that shows where a mismatch is.
func NewEchoProbe(n int) EchoProbe {
	p := make([]byte, n)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return EchoProbe{Payload: p}
}

// Request is the payload.
func (p EchoProbe) Request() []byte { return p.Payload }

// Judge compares as bytes arrive.
func (p EchoProbe) Judge(got []byte) Judgement {
	var j Judgement
	if p.AfterLine {
		g := GreetingProbe{Parse: p.Parse}.Judge(got)
		if g.More || g.Outcome != Served {
			return g
		}
		j.TargetSeq = g.TargetSeq
		got = got[bytes.IndexByte(got, '\n')+1:]
	}
	n := min(len(got), len(p.Payload))
	if i := mismatch(got[:n], p.Payload[:n]); i >= 0 {
		j.Outcome, j.Reason = Corrupt, fmt.Sprintf("echo differs at byte %d: %s", i, Printable(got[i:n]))
		return j
	}
	if len(got) < len(p.Payload) {
		return Judgement{More: true}
	}
	j.Outcome = Served
	return j
}

func mismatch(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// HTTPProbe sends one GET on a kept-alive connection and wants a status line.
// 503 and 429 are the server refusing: Closed, with the status as the reason.
type HTTPProbe struct{ req []byte }

// NewHTTPProbe builds the request for host (the Host header) and path.
func NewHTTPProbe(host, path string) HTTPProbe {
	return HTTPProbe{req: fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: connlimit\r\nConnection: keep-alive\r\n\r\n", path, host)}
}

// Request is the GET.
func (p HTTPProbe) Request() []byte { return p.req }

// Judge parses the status line.
func (HTTPProbe) Judge(got []byte) Judgement {
	nl := bytes.IndexByte(got, '\n')
	if nl < 0 {
		if len(got) > 1024 {
			return Judgement{Outcome: Other, Errno: syscall.EPROTO, Reason: "no HTTP status line in 1024 bytes"}
		}
		return Judgement{More: true}
	}
	status, ok := ParseStatusLine(got[:nl])
	switch {
	case !ok:
		return Judgement{Outcome: Other, Errno: syscall.EPROTO, Reason: "not an HTTP status line: " + Printable(got[:nl])}
	case status == 503 || status == 429:
		return Judgement{Outcome: Closed, Status: status, Reason: Printable(got[:nl])}
	}
	return Judgement{Outcome: Served, Status: status}
}

// ParseStatusLine reads "HTTP/1.1 200 OK".
func ParseStatusLine(line []byte) (uint16, bool) {
	line = bytes.TrimRight(line, "\r")
	if !bytes.HasPrefix(line, []byte("HTTP/")) {
		return 0, false
	}
	_, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(rest) < 3 || (len(rest) > 3 && rest[3] != ' ') {
		return 0, false
	}
	code, err := strconv.ParseUint(string(rest[:3]), 10, 16)
	if err != nil || code < 100 || code > 599 {
		return 0, false
	}
	return uint16(code), true
}

// Printable keeps at most 120 bytes of what a server sent, as one readable line.
func Printable(b []byte) string {
	b = bytes.TrimRight(b, "\r\n")
	if len(b) > 120 {
		b = b[:120]
	}
	out := make([]byte, 0, len(b))
	for _, c := range b {
		switch {
		case c == '\r' || c == '\n':
			out = append(out, ' ')
		case c < 0x20 || c > 0x7e:
			out = append(out, '.')
		default:
			out = append(out, c)
		}
	}
	return string(out)
}
