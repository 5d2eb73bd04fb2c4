package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
		Value       string `json:"value"`
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
	validate(t, "inspect.schema.json", b)
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

// portPackets counts, from now on, the TCP packets any process on this
// machine sends to or from port (only those that also match, an nftables
// expression, when it is not empty): an nftables counter in a table of the
// test's own, removed by stop (a run's packet-filter evidence reads every
// rule's counter) or when the test ends. It needs root and nft; without
// them it counts nothing and says so.
func portPackets(t *testing.T, port int, match string) (count func() int64, stop func()) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil || os.Geteuid() != 0 {
		t.Log("no packet count: needs root and nft")
		return func() int64 { return 0 }, func() {}
	}
	// Two counters on one port are two tables: the match is in the name.
	table := fmt.Sprintf("connlimit_test_%d_%d_%s", os.Getpid(), port, strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, match))
	nft := func(args ...string) []byte {
		out, err := exec.Command("nft", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("nft %v: %v\n%s", args, err, out)
		}
		return out
	}
	ruleset := fmt.Sprintf(`table inet %s {
	chain out {
		type filter hook output priority 0; policy accept
		tcp dport %d %s counter
		tcp sport %d %s counter
	}
}
`, table, port, match, port, match)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}
	stop = sync.OnceFunc(func() { exec.Command("nft", "delete", "table", "inet", table).Run() })
	t.Cleanup(stop)
	count = func() int64 {
		var listing struct {
			Nftables []struct {
				Rule *struct {
					Expr []struct {
						Counter *struct{ Packets int64 } `json:"counter"`
					} `json:"expr"`
				} `json:"rule"`
			} `json:"nftables"`
		}
		if err := json.Unmarshal(nft("-j", "list", "table", "inet", table), &listing); err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, o := range listing.Nftables {
			if o.Rule != nil {
				for _, e := range o.Rule.Expr {
					if e.Counter != nil {
						n += e.Counter.Packets
					}
				}
			}
		}
		return n
	}
	return count, stop
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
		// all: the run's count is every connection the forwarder holds,
		// the test's too (run counts a proxy's accepted connections).
		all bool
		// slack: descriptors that are not connections, in connections.
		slack int64
	}{
		{"built-in target", func(t *testing.T, port int) {
			startServer(t, port, targetExe(t), "target", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--nofile", "256")
		}, 100, "greeting", "target-fd-limit", false, 2},
		{"nginx worker", func(t *testing.T, port int) {
			bin := needServer(t, "nginx", "nginx-light")
			dir := t.TempDir()
			conf := nginxConf(t, dir, port, "worker_rlimit_nofile 64;", "worker_connections 1024;")
			startServer(t, port, bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
		}, 10, "http", "target-fd-limit", false, 2},
		{"redis maxclients lowered to RLIMIT_NOFILE - 32", func(t *testing.T, port int) {
			startServer(t, port, "prlimit", append([]string{"--nofile=96:96", needServer(t, "redis-server", "redis-server")}, redisArgs(t, port)...)...)
		}, 20, "redis", "target-closed", false, 2},
		{"redis --maxclients on its command line", func(t *testing.T, port int) {
			startServer(t, port, needServer(t, "redis-server", "redis-server"), append(redisArgs(t, port), "--set-proc-title", "no", "--maxclients", "30")...)
		}, 12, "redis", "target-closed", false, 2},
		{"haproxy forwarding, two descriptors a connection", func(t *testing.T, port int) {
			bin := needServer(t, "haproxy", "haproxy")
			backend := "127.0.0.1:" + strconv.Itoa(freePort(t))
			startServer(t, backendPort(backend), targetExe(t), "target", "--listen", backend, "--nofile", "4000")
			cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
			os.WriteFile(cfg, []byte(fmt.Sprintf("defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n"+
				"frontend f\n  bind 127.0.0.1:%d\n  default_backend b\nbackend b\n  server s1 %s\n", port, backend)), 0o644)
			startServer(t, port, "prlimit", "--nofile=256:256", bin, "-f", cfg, "-db")
			// HAProxy sizes its maxconn from the limit less a reserve of its
			// own (pollers, listeners, spares) and stops accepting there.
		}, 20, "greeting", "forwarder-fd-limit", true, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			tc.start(t, port)
			addr := "127.0.0.1:" + strconv.Itoa(port)
			hold(t, addr, tc.held)
			time.Sleep(200 * time.Millisecond) // accepted
			packets, stopCounting := portPackets(t, port, "")
			before, sent := portSockets(t, port), packets()
			in := inspect(t, addr)
			if after := portSockets(t, port); after != before {
				t.Errorf("sockets on the port: %d before inspect, %d after: it must send nothing", before, after)
			}
			if n := packets() - sent; n != 0 {
				t.Errorf("%d packets to or from the port during inspect: it must send nothing", n)
			}
			stopCounting()
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
			want := in.Headroom.Connections
			if tc.all {
				want += int64(tc.held)
			}
			if d := s.FirstLimitAt - want; s.FirstLimit != tc.limit || d < -tc.slack || d > tc.slack {
				t.Errorf("run: %s at %d; inspect said %d more connections before %s (%d held)", s.FirstLimit, s.FirstLimitAt, in.Headroom.Connections, tc.limit, tc.held)
			}
			t.Logf("inspect: %d more; run: %s at %d", in.Headroom.Connections, s.FirstLimit, s.FirstLimitAt)
		})
	}
}

func backendPort(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
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
	dir := t.TempDir()
	junit, prom := filepath.Join(dir, "i.xml"), filepath.Join(dir, "i.prom")
	if _, errOut, code := cli(t, "inspect", addr, "--require-headroom", "100", "--junit", junit, "--prom", prom); code != 1 {
		t.Errorf("--require-headroom 100 with ~50 free: exit %d %s, want 1", code, errOut)
	}
	// The same, for CI (JUnit) and for a cron feeding node_exporter (--prom).
	if x := readDoc(t, junit); !strings.Contains(x, `failures="1"`) || !strings.Contains(x, `<failure message="gate --require-headroom failed: want at least 100 connections of headroom, got `) {
		t.Errorf("JUnit:\n%s", x)
	}
	if !regexp.MustCompile(`connlimit_inspect_headroom_connections\{limit="target-fd-limit",name="[^"]+",pid="\d+",target="` + regexp.QuoteMeta(addr) + `"\} \d+`).MatchString(readDoc(t, prom)) {
		t.Errorf("metrics:\n%s", readDoc(t, prom))
	}
	if xl, err := exec.LookPath("xmllint"); err == nil {
		if out, err := exec.Command(xl, "--noout", "--schema", "report/testdata/junit-10.xsd", junit).CombinedOutput(); err != nil {
			t.Errorf("xmllint: %v %s", err, out)
		}
	}
	if pt, err := exec.LookPath("promtool"); err == nil {
		c := exec.Command(pt, "check", "metrics")
		c.Stdin = strings.NewReader(readDoc(t, prom))
		if out, err := c.CombinedOutput(); err != nil {
			t.Errorf("promtool: %v %s", err, out)
		}
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

// --watch prints a line a second off a terminal, with the rate at which
// headroom shrinks while connections arrive; Ctrl-C stops it with exit
// 130 and the last reading still written as JSON. A watch that runs out
// exits 0, and says steady when nothing moves.
func TestInspectWatch(t *testing.T) {
	noLeftovers(t)
	port := freePort(t)
	startServer(t, port, targetExe(t), "target", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--nofile", "256")
	addr := "127.0.0.1:" + strconv.Itoa(port)

	out, errOut, code := cli(t, "inspect", addr, "--watch", "2s")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) < 3 || !strings.Contains(lines[len(lines)-1], "headroom steady") {
		t.Errorf("--watch 2s, nothing moving: exit %d, %q %s: want 3 lines or more, the last steady", code, lines, errOut)
	}

	js := filepath.Join(t.TempDir(), "w.json")
	var stdout bytes.Buffer
	cmd := exec.Command(testExe, "inspect", addr, "--watch", "1m", "--json", js)
	cmd.Stdout, cmd.Stderr = &stdout, &stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for range 30 { // 10 a second for 3 s
		hold(t, addr, 1)
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("Ctrl-C: %v, want exit 130\n%s", err, stdout.String())
	}
	if !regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d nearest limit: target-fd-limit — \d+ more connections before accept\(\) fails with EMFILE; headroom shrinking \d+/s: zero in \S+ at this rate$`).MatchString(stdout.String()) {
		t.Errorf("no line with headroom shrinking:\n%s", stdout.String())
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatalf("--json after Ctrl-C: %v", err)
	}
	var in inspectJSON
	if err := json.Unmarshal(b, &in); err != nil || in.Headroom == nil || in.Listener == nil || in.Listener.Established < 20 {
		t.Errorf("--json after Ctrl-C: %v %s: want the last reading, 20 or more established", err, b)
	}
}

// Without root, inspect reads what the user may: its own server whole,
// and of root's server everything but the processes, saying so.
func TestInspectNotRoot(t *testing.T) {
	noLeftovers(t)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	port := freePort(t)
	srv, _ := asNobody(t, "target", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--nofile", "128")
	startServerCmd(t, port, srv, nobody)
	rootPort := freePort(t)
	startServer(t, rootPort, targetExe(t), "target", "--listen", "127.0.0.1:"+strconv.Itoa(rootPort), "--nofile", "128")

	for _, tc := range []struct {
		port  int
		limit string
		note  string
	}{
		{port, "target-fd-limit", ""},
		{rootPort, "", "belongs to uid 0, whose processes this user cannot read"},
	} {
		cmd, dir := asNobody(t, "inspect", "127.0.0.1:"+strconv.Itoa(tc.port), "--json", "-")
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("inspect as nobody: %v\n%s", err, out)
		}
		var in struct {
			inspectJSON
			NotRead []string `json:"not_read"`
		}
		if err := json.Unmarshal(out, &in); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if tc.limit != "" && (in.Headroom == nil || in.Headroom.Limit != tc.limit || len(in.Processes) != 1 || in.Processes[0].FDs < 5) {
			t.Errorf("its own server: %s: want %s from its descriptors", out, tc.limit)
		}
		if tc.note != "" && (len(in.Processes) != 0 || !strings.Contains(strings.Join(in.NotRead, "\n"), tc.note)) {
			t.Errorf("root's server: processes %+v, not_read %q: want none, and %q", in.Processes, in.NotRead, tc.note)
		}
	}
}

// PostgreSQL's own cap, read from the postmaster's command line: its
// max_connections is where a run with the postgres probe is refused
// (53300, before logging in), the superusers' slots named beside it.
func TestInspectPostgresCap(t *testing.T) {
	noLeftovers(t)
	addr := startPostgres(t, "max_connections=9", "superuser_reserved_connections=2")
	in := inspect(t, addr)
	if in.Headroom == nil || in.Headroom.Limit != "target-closed" || in.Headroom.Connections != 9 || !strings.Contains(in.Headroom.Value, "2 of them kept for superusers: an ordinary role is refused from 7 on") {
		t.Fatalf("inspection %+v: want target-closed, 9 more, the 2 reserved named", in.Headroom)
	}
	s := runJSON(t, "--target", addr, "--probe", "postgres", "--connections", "20", "--rate", "100", "--hold", "500ms")
	if s.FirstLimit != "target-closed" || s.FirstLimitAt != in.Headroom.Connections {
		t.Errorf("run: %s at %d; inspect said %d more before target-closed", s.FirstLimit, s.FirstLimitAt, in.Headroom.Connections)
	}
}
