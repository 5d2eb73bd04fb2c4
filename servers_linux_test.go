package main

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Real servers this project did not write, installed from Debian packages by
// .ci/run. Outside CI a missing one skips its test with the reason.
func needServer(t *testing.T, bin, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing in CI: .ci/run installs the Debian package %s", bin, pkg)
	}
	t.Skipf("%s not installed (apt-get install %s); .ci/run installs it", bin, pkg)
	return ""
}

// freePort finds a loopback port nobody listens on (a listener is opened and
// closed: another process could take it in between, which the server start
// would report).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startServer runs a server in the foreground as our child, waits until it
// listens on port, and stops it (SIGTERM, then SIGKILL) when the test ends.
func startServer(t *testing.T, port int, name string, args ...string) *exec.Cmd {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("%s exited before listening: %v\n%s", name, err, out.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return cmd
		}
	}
	t.Fatalf("%s did not listen on %s\n%s", name, addr, out.String())
	return nil
}

// nginx stopped by its worker's RLIMIT_NOFILE (worker_rlimit_nofile 64):
// target-fd-limit, with the worker found by the listener's socket inode.
func TestNginxFDLimit(t *testing.T) {
	noLeftovers(t)
	bin := needServer(t, "nginx", "nginx-light")
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	var temps strings.Builder
	for _, k := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&temps, "  %s_temp_path %s;\n", k, filepath.Join(dir, k))
	}
	err := os.WriteFile(conf, fmt.Appendf(nil, `daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 64;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
%[3]s  server { listen 127.0.0.1:%[2]d; location / { return 200 "ok\n"; } }
}
`, dir, port, temps.String()), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	startServer(t, port, bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))

	csvPath := filepath.Join(dir, "c.csv")
	s := runJSON(t, "--target", "127.0.0.1:"+strconv.Itoa(port), "--probe", "http", "--connections", "100",
		"--greeting-timeout", "500ms", "--hold", "300ms", "--csv", csvPath)
	if s.FirstLimit != "target-fd-limit" {
		t.Fatalf("first limit %s, want target-fd-limit; outcomes %v, processes %+v", s.FirstLimit, s.Outcomes, s.Processes)
	}
	served, queued := s.Outcomes["served"], s.Outcomes["queued"]
	if served < 30 || served >= 64 || served+queued != 100 || s.FirstLimitAt != int64(served) {
		t.Errorf("outcomes %v at %d: want fewer than 64 served (the worker's limit), the rest queued", s.Outcomes, s.FirstLimitAt)
	}
	var worker *processJSON
	for i, p := range s.Processes {
		if !strings.HasPrefix(p.FoundBy, "socket inode ") || p.Name != "nginx" {
			t.Errorf("process %+v: want nginx found by socket inode", p)
		}
		if p.AtLimit {
			worker = &s.Processes[i]
		}
	}
	if len(s.Processes) != 2 || worker == nil || worker.NoFileSoft != 64 || worker.SlotsUsedMax != 64 || !strings.Contains(worker.Cmdline, "worker") {
		t.Fatalf("processes %+v: want the master and a worker at 64 of 64", s.Processes)
	}
	if !strings.Contains(s.Value, "64 (nginx: worker process, pid "+strconv.Itoa(worker.PID)) {
		t.Errorf("value %q", s.Value)
	}
	rows := readCSV(t, csvPath)
	if rows[1][6] != "served" || rows[1][11] != "200" {
		t.Errorf("first row %v: want served with HTTP status 200", rows[1])
	}
}

// Redis stopped by its own connection cap (maxclients 10): it accepts, says
// "-ERR max number of clients reached" and closes, with descriptors to spare.
func TestRedisConnectionCap(t *testing.T) {
	noLeftovers(t)
	bin := needServer(t, "redis-server", "redis-server")
	dir := t.TempDir()
	port := freePort(t)
	startServer(t, port, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--maxclients", "10",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no", "--dir", dir)

	s := runJSON(t, "--target", "localhost:"+strconv.Itoa(port), "--connections", "30", "--hold", "300ms")
	if s.FirstLimit != "target-closed" || s.FirstLimitAt != 10 || s.Outcomes["served"] != 10 || s.Outcomes["closed"] != 20 {
		t.Fatalf("first limit %s at %d, outcomes %v: want target-closed at 10", s.FirstLimit, s.FirstLimitAt, s.Outcomes)
	}
	if len(s.Reasons) == 0 || s.Reasons[0].Reason != "-ERR max number of clients reached" || s.Reasons[0].Count != 20 {
		t.Errorf("reasons %+v", s.Reasons)
	}
	if len(s.Processes) != 1 || s.Processes[0].Name != "redis-server" || s.Processes[0].AtLimit || !s.Processes[0].Readable {
		t.Errorf("processes %+v: want redis-server, readable, not at its fd limit", s.Processes)
	}
	if !strings.Contains(s.Value, "max number of clients") {
		t.Errorf("value %q", s.Value)
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// Each gate passes and fails as documented: exit 1 and one line per failed gate.
func TestGates(t *testing.T) {
	noLeftovers(t)
	// 100 connections to a target with 32 descriptors: about 20 served, target-fd-limit.
	common := []string{"run", "--connections", "100", "--target-nofile", "32", "--greeting-timeout", "300ms", "--hold", "0s", "-q"}
	tests := []struct {
		gates  []string
		code   int
		failed []string // gates named in stderr
	}{
		{[]string{"--require-served", "5", "--expect-limit", "target-fd-limit", "--max-connect-p99", "10s"}, 0, nil},
		{[]string{"--require-served", "100"}, 1, []string{"--require-served"}},
		{[]string{"--expect-limit", "none"}, 1, []string{"--expect-limit"}},
		{[]string{"--max-connect-p99", "1ns"}, 1, []string{"--max-connect-p99"}},
		{[]string{"--require-served", "100", "--expect-limit", "refused"}, 1, []string{"--require-served", "--expect-limit"}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.gates, " "), func(t *testing.T) {
			js := filepath.Join(t.TempDir(), "s.json")
			_, stderr, code := cli(t, append(append(common, "--json", js), tc.gates...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.code, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(tc.failed) == 0 && stderr != "" || len(tc.failed) > 0 && len(lines) != len(tc.failed) {
				t.Fatalf("stderr %q: want one line per failed gate %v", stderr, tc.failed)
			}
			for i, g := range tc.failed {
				if !strings.Contains(lines[i], "gate "+g+" failed: want ") || !strings.Contains(lines[i], ", got ") {
					t.Errorf("line %q: want the gate %s, its bound and the figure", lines[i], g)
				}
			}
			s := readSummary(t, js)
			if len(s.Gates) != len(tc.gates)/2 {
				t.Errorf("JSON gates %+v", s.Gates)
			}
		})
	}
}

func TestExternalTargetFaults(t *testing.T) {
	noLeftovers(t)
	dir := t.TempDir()
	port := strconv.Itoa(freePort(t))
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--target", "127.0.0.1:" + port}, 3, "nothing listens there"},
		{[]string{"--target", "127.0.0.1:" + port, "--target-nofile", "64"}, 2, "--target-nofile describes the built-in target"},
		{[]string{"--target", "192.0.2.1:80"}, 2, "not a loopback address"},
		{[]string{"--target", "127.0.0.1"}, 2, "--target"},
		{[]string{"--probe", "http"}, 2, "--probe http: needs --target"},
		{[]string{"--probe", "ftp"}, 2, "--probe"},
		{[]string{"--expect-limit", "too-many"}, 2, "--expect-limit"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, stderr, code := cli(t, append([]string{"run", "-q", "--json", filepath.Join(dir, "s.json")}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit %d, stderr %q: want %d and one line with %q", code, stderr, tc.code, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "s.json")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("s.json written: %v", err)
			}
		})
	}
}
