package loadgen

import (
	"encoding/binary"
	"testing"
)

func pgError(fields ...string) []byte {
	var body []byte
	for i := 0; i+1 < len(fields); i += 2 {
		body = append(append(append(body, fields[i][0]), fields[i+1]...), 0)
	}
	body = append(body, 0)
	return append(append([]byte{'E'}, binary.BigEndian.AppendUint32(nil, uint32(len(body)+4))...), body...)
}

func mysqlPacket(payload []byte) []byte {
	n := len(payload)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), 0}, payload...)
}

func TestDatabaseProbes(t *testing.T) {
	tooMany := pgError("S", "FATAL", "C", "53300", "M", "sorry, too many clients already")
	mysqlErr := mysqlPacket(append([]byte{0xff, 0x10, 0x04}, "#08004Too many connections"...))
	for _, tc := range []struct {
		name   string
		p      Probe
		got    []byte
		more   bool
		want   Outcome
		reason string
	}{
		{"postgres: nothing yet", PostgresProbe{}, nil, true, Pending, ""},
		{"postgres: an authentication request", PostgresProbe{}, []byte{'R', 0, 0, 0, 12, 0, 0, 0, 5, 1, 2, 3, 4}, false, Served, ""},
		{"postgres: too many clients", PostgresProbe{}, tooMany, false, Closed, "53300 sorry, too many clients already"},
		{"postgres: half an error", PostgresProbe{}, tooMany[:12], true, Pending, ""},
		{"postgres: no such role is still an answer", PostgresProbe{}, pgError("C", "28000", "M", `role "x" does not exist`), false, Served, ""},
		{"postgres: the postmaster could not fork", PostgresProbe{}, []byte("Ecould not fork new process for connection: Resource temporarily unavailable\n\x00"), false, Closed,
			"could not fork new process for connection: Resource temporarily unavailable"},
		{"postgres: half an old error", PostgresProbe{}, []byte("Ecould not fork"), true, Pending, ""},
		{"postgres: not postgres", PostgresProbe{}, []byte("HTTP/1.1 400 Bad Request\r\n"), false, Other, "not a PostgreSQL server: HTTP/1.1 400 Bad Request"},
		{"mysql: a handshake", MySQLProbe{}, mysqlPacket([]byte("\x0a5.5.5-10.11.6-MariaDB\x00")), false, Served, ""},
		{"mysql: too many connections", MySQLProbe{}, mysqlErr, false, Closed, "1040 Too many connections"},
		{"mysql: half an error", MySQLProbe{}, mysqlErr[:9], true, Pending, ""},
		{"mysql: an old ERR without SQLSTATE", MySQLProbe{}, mysqlPacket(append([]byte{0xff, 0x10, 0x04}, "Too many connections"...)), false, Closed, "1040 Too many connections"},
		{"redis: PONG", RedisProbe{}, []byte("+PONG\r\n"), false, Served, ""},
		{"redis: needs a password", RedisProbe{}, []byte("-NOAUTH Authentication required.\r\n"), false, Served, ""},
		{"redis: at maxclients", RedisProbe{}, []byte("-ERR max number of clients reached\r\n"), false, Closed, "ERR max number of clients reached"},
		{"redis: half a line", RedisProbe{}, []byte("+PO"), true, Pending, ""},
	} {
		j := tc.p.Judge(tc.got)
		if j.More != tc.more || !tc.more && (j.Outcome != tc.want || j.Reason != tc.reason) {
			t.Errorf("%s: %+v, want more %v, %v %q", tc.name, j, tc.more, tc.want, tc.reason)
		}
	}
	req := NewPostgresProbe("postgres", "postgres").Request()
	if n := binary.BigEndian.Uint32(req); int(n) != len(req) || binary.BigEndian.Uint32(req[4:]) != 3<<16 || req[len(req)-1] != 0 {
		t.Errorf("StartupMessage %q", req)
	}
}

func FuzzDatabaseProbes(f *testing.F) {
	f.Add([]byte("E\x00\x00\x00\x08C53300\x00\x00"))
	f.Add([]byte("\x05\x00\x00\x00\xff\x10\x04"))
	f.Add([]byte("-ERR x\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range []Probe{PostgresProbe{}, MySQLProbe{}, RedisProbe{}} {
			if j := p.Judge(b); j.More && len(b) > maxReply+8 {
				t.Fatalf("%T wants more after %d bytes", p, len(b))
			}
		}
	})
}
