package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/connlimit/connlimit/limits"
)

// inspectJSON is the part of inspect's JSON the tests read.
type inspectJSON struct {
	SchemaVersion int `json:"schema_version"`
	Headroom      *struct {
		Limit       string `json:"limit"`
		PID         int    `json:"pid"`
		Connections int64  `json:"connections"`
	} `json:"headroom"`
	Processes []struct {
		PID       int            `json:"pid"`
		FDs       int            `json:"fds"`
		FDsByKind map[string]int `json:"fds_by_kind"`
		Headroom  int64          `json:"headroom"`
	} `json:"processes"`
	Listener *struct {
		Established int `json:"established"`
	} `json:"listener"`
}

func inspect(t *testing.T, args ...string) inspectJSON {
	t.Helper()
	js := filepath.Join(t.TempDir(), "i.json")
	out, errOut, code := cli(t, append([]string{"inspect", "--json", js}, args...)...)
	if code != 0 {
		t.Fatalf("inspect %v: exit %d\n%s%s", args, code, out, errOut)
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var in inspectJSON
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	return in
}

// portSockets counts every TCP socket, in any state, with port as either end.
func portSockets(t *testing.T, port int) int {
	t.Helper()
	sd, err := limits.OpenSockDiag()
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	socks, err := sd.TCPSockets(limits.TCPAllStates)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range socks {
		if int(s.Local.Port()) == port || int(s.Remote.Port()) == port {
			n++
		}
	}
	return n
}

// hold opens n connections to addr and keeps them until the test ends.
func hold(t *testing.T, addr string, n int) {
	t.Helper()
	for range n {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

// inspect's headroom is what a following run finds: the built-in target
// (its own process, RLIMIT_NOFILE 256) holding 100 of the test's
// connections, an nginx worker at worker_rlimit_nofile 64 holding 10, and
// Redis at its own cap (maxclients, which it lowers to RLIMIT_NOFILE − 32
// when it cannot raise the limit, or as its command line sets it).
// inspect itself sends nothing: no socket on the port appears or goes.
func TestInspectHeadroomMatchesRun(t *testing.T) {
	noLeftovers(t)
	for _, tc := range []struct {
		name  string
		start func(t *testing.T, port int)
		held  int
		probe string
		limit string
	}{
		{"built-in target", func(t *testing.T, port int) {
			startServer(t, port, targetExe(t), "target", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--nofile", "256")
		}, 100, "greeting", "target-fd-limit"},
		{"nginx worker", func(t *testing.T, port int) {
			bin := needServer(t, "nginx", "nginx-light")
			dir := t.TempDir()
			conf := nginxConf(t, dir, port, "worker_rlimit_nofile 64;", "worker_connections 1024;")
			startServer(t, port, bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
		}, 10, "http", "target-fd-limit"},
		{"redis maxclients lowered to RLIMIT_NOFILE - 32", func(t *testing.T, port int) {
			startServer(t, port, "prlimit", append([]string{"--nofile=96:96", needServer(t, "redis-server", "redis-server")}, redisArgs(t, port)...)...)
		}, 20, "redis", "target-closed"},
		{"redis --maxclients on its command line", func(t *testing.T, port int) {
			startServer(t, port, needServer(t, "redis-server", "redis-server"), append(redisArgs(t, port), "--set-proc-title", "no", "--maxclients", "30")...)
		}, 12, "redis", "target-closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			tc.start(t, port)
			addr := "127.0.0.1:" + strconv.Itoa(port)
			hold(t, addr, tc.held)
			time.Sleep(200 * time.Millisecond) // accepted
			before := portSockets(t, port)
			in := inspect(t, addr)
			if after := portSockets(t, port); after != before {
				t.Errorf("sockets on the port: %d before inspect, %d after: it must send nothing", before, after)
			}
			if in.SchemaVersion != 1 || in.Headroom == nil || in.Headroom.Limit != tc.limit || in.Listener == nil || in.Listener.Established != tc.held {
				t.Fatalf("inspection %+v: want %s nearest, %d established", in, tc.limit, tc.held)
			}
			accepted := 0
			for _, p := range in.Processes {
				accepted += p.FDsByKind["tcp-accepted"]
			}
			if accepted != tc.held {
				t.Errorf("processes %+v: want %d tcp-accepted in all", in.Processes, tc.held)
			}
			s := runJSON(t, "--target", addr, "--probe", tc.probe, "--connections", "400", "--greeting-timeout", "500ms", "--hold", "0s")
			// Within the descriptors that are not connections: a server opens
			// and closes a few of its own (nginx: a log, an eventfd).
			if d := s.FirstLimitAt - in.Headroom.Connections; s.FirstLimit != tc.limit || d < -2 || d > 2 {
				t.Errorf("run: %s at %d; inspect said %d more connections before %s", s.FirstLimit, s.FirstLimitAt, in.Headroom.Connections, tc.limit)
			}
			t.Logf("inspect: %d more; run: %s at %d", in.Headroom.Connections, s.FirstLimit, s.FirstLimitAt)
		})
	}
}

func redisArgs(t *testing.T, port int) []string {
	return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--protected-mode", "no", "--dir", t.TempDir()}
}

func TestInspectBadInput(t *testing.T) {
	port := freePort(t)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"inspect"}, 2},
		{[]string{"inspect", "nohostport"}, 2},
		{[]string{"inspect", "127.0.0.1:99999"}, 2},
		{[]string{"inspect", "127.0.0.1:1", "127.0.0.1:2"}, 2},
		{[]string{"inspect", "--pid", "0"}, 2},
		{[]string{"inspect", "127.0.0.1:1", "--watch", "10ms"}, 2},
		{[]string{"inspect", "127.0.0.1:1", "--require-headroom", "0"}, 2},
		{[]string{"inspect", fmt.Sprintf("127.0.0.1:%d", port)}, 3}, // nothing listens
		{[]string{"inspect", "--pid", "999999999"}, 3},
	} {
		_, errOut, code := cli(t, tc.args...)
		if code != tc.code {
			t.Errorf("%v: exit %d (%s), want %d", tc.args, code, errOut, tc.code)
		}
	}
}

// --require-headroom fails (exit 1) when a process behind the port has less.
func TestInspectRequireHeadroom(t *testing.T) {
	noLeftovers(t)
	port := freePort(t)
	startServer(t, port, targetExe(t), "target", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--nofile", "64")
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if _, errOut, code := cli(t, "inspect", addr, "--require-headroom", "10"); code != 0 {
		t.Errorf("--require-headroom 10 with ~50 free: exit %d %s", code, errOut)
	}
	if _, errOut, code := cli(t, "inspect", addr, "--require-headroom", "100"); code != 1 {
		t.Errorf("--require-headroom 100 with ~50 free: exit %d %s, want 1", code, errOut)
	}
}

// targetExe is this test binary under another name, for a built-in target
// the test starts as a server of its own: processes running testExe are
// the runs' children, which must all be gone after each run.
func targetExe(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "connlimit-target")
	if err := os.Link(testExe, exe); err != nil {
		b, err := os.ReadFile(testExe)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(exe, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return exe
}
