package loadgen

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"syscall"
)

// Probes for servers that wait for the client's first packet, or speak a
// protocol of their own before they refuse. Each decodes the server's
// refusal into its words: the reason a report shows, not raw bytes.

// PostgresProbe sends a StartupMessage (protocol 3.0) and judges the
// first message back: an authentication request (or AuthenticationOk) is
// served; an ErrorResponse is a refusal, with its SQLSTATE and message
// (53300 "sorry, too many clients already" past max_connections), unless it
// is about who may log in (class 28, 3D000): the server did take the connection.
type PostgresProbe struct{ req []byte }

// NewPostgresProbe builds the StartupMessage for user and database.
func NewPostgresProbe(user, database string) PostgresProbe {
	body := binary.BigEndian.AppendUint32(nil, 3<<16) // protocol 3.0
	for _, kv := range [][2]string{{"user", user}, {"database", database}, {"application_name", "connlimit"}} {
		body = append(append(append(append(body, kv[0]...), 0), kv[1]...), 0)
	}
	body = append(body, 0)
	return PostgresProbe{req: append(binary.BigEndian.AppendUint32(nil, uint32(len(body)+4)), body...)}
}

// Request is the StartupMessage.
func (p PostgresProbe) Request() []byte { return p.req }

// Judge reads the first message: a type byte and a length.
func (PostgresProbe) Judge(got []byte) Judgement {
	if len(got) < 5 {
		return Judgement{More: true}
	}
	if got[0] == 'E' && got[1] != 0 {
		// The old protocol's error, text to a NUL: what the postmaster sends
		// when it cannot fork a backend ("could not fork new process for
		// connection: Resource temporarily unavailable").
		end := bytes.IndexByte(got[1:], 0)
		switch {
		case end < 0 && len(got) > 1024:
			return Judgement{Outcome: Other, Errno: syscall.EPROTO, Reason: "a PostgreSQL error with no end in 1024 bytes"}
		case end < 0:
			return Judgement{More: true}
		}
		return Judgement{Outcome: Closed, Reason: Printable(got[1 : 1+end])}
	}
	n := int(binary.BigEndian.Uint32(got[1:5]))
	switch got[0] {
	case 'R', 'v': // an authentication request or AuthenticationOk; NegotiateProtocolVersion
		return Judgement{Outcome: Served}
	case 'E':
		if n < 4 || n > maxReply {
			return Judgement{Outcome: Other, Errno: syscall.EPROTO, Reason: "a PostgreSQL ErrorResponse of length " + fmt.Sprint(n)}
		}
		if len(got) < 1+n {
			return Judgement{More: true}
		}
		code, reason := postgresError(got[5 : 1+n])
		if strings.HasPrefix(code, "28") || code == "3D000" {
			// Who may log in, or the database, is wrong: the server took the
			// connection and answered it, which is all a probe asks.
			return Judgement{Outcome: Served}
		}
		return Judgement{Outcome: Closed, Reason: reason}
	}
	return Judgement{Outcome: Other, Errno: syscall.EPROTO, Reason: "not a PostgreSQL server: " + Printable(got[:min(len(got), 40)])}
}

// postgresError is the SQLSTATE and "SQLSTATE message" from an
// ErrorResponse's fields.
func postgresError(fields []byte) (string, string) {
	var code, msg string
	for len(fields) > 1 {
		t := fields[0]
		end := bytes.IndexByte(fields[1:], 0)
		if end < 0 {
			break
		}
		v := string(fields[1 : 1+end])
		switch t {
		case 'C':
			code = v
		case 'M':
			msg = v
		}
		fields = fields[2+end:]
	}
	return code, strings.TrimSpace(code + " " + Printable([]byte(msg)))
}

// MySQLProbe waits for the server's first packet (MySQL and MariaDB speak
// first): a handshake (protocol 10) is served, an ERR packet a refusal,
// with its error number and message (1040 "Too many connections").
type MySQLProbe struct{}

// Request sends nothing: the server speaks first.
func (MySQLProbe) Request() []byte { return nil }

// Judge reads one packet: a 3-byte length, a sequence number, the payload.
func (MySQLProbe) Judge(got []byte) Judgement {
	if len(got) < 5 {
		return Judgement{More: true}
	}
	n := int(got[0]) | int(got[1])<<8 | int(got[2])<<16
	switch got[4] {
	case 10:
		return Judgement{Outcome: Served}
	case 0xff:
		if n < 1 {
			return Judgement{Outcome: Other, Errno: syscall.EPROTO, Reason: "a MySQL packet of length 0"}
		}
		if len(got) < 4+n {
			if 4+n > maxReply {
				return Judgement{Outcome: Other, Errno: syscall.EPROTO, Reason: "a MySQL ERR packet of length " + fmt.Sprint(n)}
			}
			return Judgement{More: true}
		}
		return Judgement{Outcome: Closed, Reason: mysqlError(got[5 : 4+n])}
	}
	return Judgement{Outcome: Other, Errno: syscall.EPROTO, Reason: "not a MySQL handshake: " + Printable(got[:min(len(got), 40)])}
}

// mysqlError is "1040 Too many connections" from an ERR packet after its
// 0xff: a little-endian error number, an optional "#" and SQLSTATE, the message.
func mysqlError(p []byte) string {
	if len(p) < 2 {
		return "an empty MySQL ERR packet"
	}
	code, msg := binary.LittleEndian.Uint16(p), p[2:]
	if len(msg) >= 6 && msg[0] == '#' {
		msg = msg[6:]
	}
	return fmt.Sprintf("%d %s", code, Printable(msg))
}

// RedisProbe sends PING and wants a reply line: +PONG (or an
// authentication error: the server took the connection) is served; any
// other error line is a refusal in Redis's words ("-ERR max number of
// clients reached", which Redis sends before it reads anything).
type RedisProbe struct{}

// Request is an inline PING.
func (RedisProbe) Request() []byte { return []byte("PING\r\n") }

// Judge reads one line.
func (RedisProbe) Judge(got []byte) Judgement {
	nl := bytes.IndexByte(got, '\n')
	switch {
	case nl < 0 && len(got) > 1024:
		return Judgement{Outcome: Other, Errno: syscall.EPROTO, Reason: "no Redis reply line in 1024 bytes"}
	case nl < 0:
		return Judgement{More: true}
	}
	line := bytes.TrimRight(got[:nl], "\r")
	switch {
	case bytes.HasPrefix(line, []byte("+")),
		bytes.HasPrefix(line, []byte("-NOAUTH")), bytes.HasPrefix(line, []byte("-WRONGPASS")):
		return Judgement{Outcome: Served}
	case bytes.HasPrefix(line, []byte("-")):
		return Judgement{Outcome: Closed, Reason: Printable(line[1:])}
	}
	return Judgement{Outcome: Other, Errno: syscall.EPROTO, Reason: "not a Redis reply: " + Printable(line)}
}
