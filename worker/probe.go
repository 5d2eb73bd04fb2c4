package worker

import (
	"github.com/connlimit/connlimit/loadgen"
	"github.com/connlimit/connlimit/target"
)

// NewProbe builds a probe by name, for a one-process run and for each
// worker alike. builtin says the target is connlimit's own, which greets
// before it echoes.
func NewProbe(kind string, payload int, builtin bool, host, path string) loadgen.Probe {
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
	}
	return loadgen.GreetingProbe{Parse: target.ParseGreeting}
}
