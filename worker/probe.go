package worker

import (
	"net"
	"net/netip"
	"strings"

	"github.com/connlimit/connlimit/loadgen"
	"github.com/connlimit/connlimit/target"
)

// ProbeSpec names a probe and what it needs.
type ProbeSpec struct {
	Kind       string // connect, accept, greeting, echo, http, postgres, mysql, redis or tls
	Payload    int    // the echo probe's bytes
	Builtin    bool   // the target is connlimit's own, which greets before it echoes
	Host       string // the target as the user wrote it: the http probe's Host header, tls's default server name
	HTTPPath   string
	ServerName string // tls: the name sent by SNI; "" takes Host unless it is an address
}

// NewProbe builds a probe, for a one-process run and for each worker alike.
func NewProbe(s ProbeSpec) loadgen.Probe {
	kind, payload, builtin, host, path := s.Kind, s.Payload, s.Builtin, s.Host, s.HTTPPath
	switch kind {
	case "connect", "accept":
		return loadgen.ConnectProbe{} // accept: the run asks the kernel afterwards
	case "echo":
		p := loadgen.NewEchoProbe(payload)
		if builtin {
			p.AfterLine, p.Parse = true, target.ParseGreeting
		}
		return p
	case "http":
		return loadgen.NewHTTPProbe(host, path)
	case "postgres":
		// A role that need not exist: its refusal (28000) still shows the
		// server took the connection, and no one logs in.
		return loadgen.NewPostgresProbe("connlimit", "connlimit")
	case "mysql":
		return loadgen.MySQLProbe{}
	case "redis":
		return loadgen.RedisProbe{}
	case "tls":
		return loadgen.NewTLSProbe(s.serverName())
	}
	return loadgen.GreetingProbe{Parse: target.ParseGreeting}
}

// serverName is the name a TLS client would send for the target: none for
// an address, as crypto/tls does.
func (s ProbeSpec) serverName() string {
	if s.ServerName != "" {
		return s.ServerName
	}
	h := s.Host
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return ""
	}
	return h
}
