package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Bad input: one line naming the flag (and the accepted range), exit 2, no file.
func TestBadInput(t *testing.T) {
	noLeftovers(t)
	dir := t.TempDir()
	tests := []struct {
		args []string
		flag string // the error must name it
	}{
		{[]string{"--connections", "0"}, "--connections"},
		{[]string{"--connections", "-5"}, "--connections"},
		{[]string{"--connections", "many"}, "--connections"},
		{[]string{"--rate", "-1"}, "--rate"},
		{[]string{"--concurrency", "0"}, "--concurrency"},
		{[]string{"--connect-timeout", "0s"}, "--connect-timeout"},
		{[]string{"--connect-timeout", "soon"}, "--connect-timeout"},
		{[]string{"--greeting-timeout", "-1s"}, "--greeting-timeout"},
		{[]string{"--hold", "-1s"}, "--hold"},
		{[]string{"--target-nofile", "3"}, "--target-nofile"},
		{[]string{"--target-nofile", "99999999"}, "--target-nofile"},
		{[]string{"--target-port", "70000"}, "--target-port"},
		{[]string{"--interval", "1ms"}, "--interval"},
		{[]string{"--on-emfile", "panic"}, "--on-emfile"},
		{[]string{"--backlog", "-1"}, "--backlog"},
		{[]string{"target", "--on-emfile", "x"}, "--on-emfile"},
		{[]string{"--csv", filepath.Join(dir, "missing", "c.csv")}, "--csv"},
		{[]string{"--json", filepath.Join(dir, "x"), "--csv", filepath.Join(dir, "x")}, "--json"},
		{[]string{"--nofile", "10"}, "--nofile"},
		{[]string{"bogus"}, "bogus"},
		{[]string{"limits", "--connections", "5"}, "--connections"},
		{[]string{"target", "--nofile", "2"}, "--nofile"},
		{[]string{"--nofile", "99999999"}, "--nofile"},
		{[]string{"--procs", "2000"}, "--procs"},
		{[]string{"--target-procs", "0"}, "--target-procs"},
		{[]string{"--ramp-procs", "0"}, "--ramp-procs"},
		{[]string{"--ramp-procs", "some"}, "--ramp-procs"},
		{[]string{"--procs", "2", "--nofile", "100"}, "--nofile"},
		{[]string{"--max-conns", "-1"}, "--max-conns"},
		{[]string{"--on-max-conns", "drop"}, "--on-max-conns"},
		{[]string{"target", "--accept-delay", "1h"}, "--accept-delay"},
		{[]string{"--netns", "--port-range", "40000"}, "--port-range"},
		{[]string{"--netns", "--port-range", "80-90"}, "--port-range"},
		{[]string{"--netns", "--somaxconn", "-4"}, "--somaxconn"},
		{[]string{"--somaxconn", "16"}, "--somaxconn"},
		{[]string{"--payload", "0"}, "--payload"},
		{[]string{"--payload", "1M"}, "--payload"},
		{[]string{"--http-path", "healthz"}, "--http-path"},
		{[]string{"--require-served", "-1"}, "--require-served"},
		{[]string{"--require-served", "5000"}, "--require-served"},
		{[]string{"--max-connect-p99", "-5ms"}, "--max-connect-p99"},
		{[]string{"--target", "127.0.0.1:1", "--target-pid", "0"}, "--target-pid"},
		{[]string{"--target-port", "http"}, "--target-port"},
		{[]string{"--target", "127.0.0.1:99999"}, "--target"},
		{[]string{"--target", "[::1"}, "--target"},
		{[]string{"--csv", "/proc/connlimit.csv"}, "--csv"},
		{[]string{"--timeline", dir}, "--timeline"},
		{[]string{"--json", filepath.Join(dir, "x"), "--timeline", filepath.Join(dir, "x")}, "--timeline"},
		{[]string{"--listen", "127.0.0.1:0"}, "--listen"},
		{[]string{"target", "--listen", "nonsense"}, "--listen"},
		{[]string{"target", "--events-fd", "0"}, "--events-fd"},
		{[]string{"target", "--stats-interval", "0s"}, "--stats-interval"},
		{[]string{"target", "--counters-fd", "2"}, "--counters-fd"},
		{[]string{"target", "--counters-fd", "900"}, "--counters-fd"},
		{[]string{"--interval", "2m"}, "--interval"},
		{[]string{"--concurrency", "2000000"}, "--concurrency"},
		{[]string{"--rate", "NaN"}, "--rate"},
		{[]string{"--procs", "0"}, "--procs"},
		{[]string{"--netns", "--target", "127.0.0.1:1"}, "--netns"},
		{[]string{"--hold", "25h"}, "--hold"},
		{[]string{"--connections", "10000001"}, "--connections"},
		{[]string{"help", "bogus"}, "bogus"},
		{[]string{"--forward-nofile", "64"}, "--forward-nofile"},
		{[]string{"--forward", "--forward-nofile", "8"}, "--forward-nofile"},
		{[]string{"--forward", "--target", "127.0.0.1:1"}, "--forward"},
		{[]string{"forward"}, "--to"},
		{[]string{"forward", "--to", "nowhere"}, "--to"},
		{[]string{"--mss", "40"}, "--mss"},
		{[]string{"--probe", "http"}, "--probe"},
		{[]string{"--probe", "accept", "--target", "192.0.2.1:80", "--allow-remote"}, "--probe accept"},
		{[]string{"--source-ips", "127.0.0.9-127.0.0.2"}, "--source-ips"},
		{[]string{"--source-ips", "192.0.2.7"}, "--source-ips"},
		{[]string{"--source-ips", "::1"}, "--source-ips"},
		{[]string{"--target", "127.0.0.1:0"}, "--target"},
		{[]string{"--target", "[::1]:0"}, "--target"},
		{[]string{"forward", "--to", "10.0.0.1:80"}, "--to"},
		{[]string{"forward", "--to", "127.0.0.1:80", "--listen", "0.0.0.0:0"}, "--listen"},
		{[]string{"target", "--listen", "0.0.0.0:0"}, "--listen"},
		{[]string{"target", "--listen", "[::]:0"}, "--listen"},
		{[]string{"--probe", "connect", "--payload", "32"}, "--payload"},
		{[]string{"--http-path", "/x"}, "--http-path"},
		{[]string{"--target-pid", "5"}, "--target-pid"},
		{[]string{"--rate", "0.0001"}, "--rate"},
		{[]string{"--on-max-conns", "close"}, "--on-max-conns"},
		// An empty value is an unset shell variable, not the default: no
		// report would be written, or the built-in target tested instead.
		{[]string{"--csv", ""}, `--csv ""`},
		{[]string{"--json="}, `--json ""`},
		{[]string{"--target", ""}, `--target ""`},
		{[]string{"--expect-limit", ""}, `--expect-limit ""`},
		{[]string{"inspect", "--prom", "", "127.0.0.1:1"}, `--prom ""`},
		{[]string{"merge", "--csv", "", "a.json"}, `--csv ""`},
		{[]string{"plot", "-o", "", "t.csv"}, `--output ""`},
		{[]string{"--push", "http://127.0.0.1:9091/metrics/job/x"}, "--push"},
		{[]string{"target", "--listen", "127.0.0.1:99999"}, "--listen"},
		{[]string{"target", "--listen", ":-1"}, "--listen"},
		{[]string{"forward", "--to", "127.0.0.1:0"}, "--to"},
		{[]string{"target", "--nofile", "99999999"}, "--nofile"},
		{[]string{"merge", "--push", "http://127.0.0.1:9091/?a=b", "a.json"}, "--push"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			stdout, stderr, code := cli(t, tc.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr %q", code, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.flag) {
				t.Errorf("stderr %q: want one line naming %s", stderr, tc.flag)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("files left in %s: %v", dir, ents)
			}
		})
	}
}

// A usage error says what was given, not only what is wanted.
func TestBadInputEchoesValue(t *testing.T) {
	for _, args := range [][]string{
		{"--require-served", "5000"},
		{"--connections", "0"},
		{"--hold", "25h"},
		{"--backlog", "-1"},
		{"--target", "127.0.0.1:0"},
		{"target", "--events-fd", "0"},
		{"--payload", "70000"},
	} {
		_, stderr, code := cli(t, args...)
		if v := args[len(args)-1]; code != exitUsage || !strings.Contains(stderr, v) {
			t.Errorf("%v: exit %d, stderr %q: want 2 and the value %s", args, code, stderr, v)
		}
	}
}

// connlimit target keeps to loopback: ":0" binds 127.0.0.1, not every interface.
func TestTargetListensOnLoopback(t *testing.T) {
	noLeftovers(t)
	cmd := exec.Command(testExe, "target", "--listen", ":0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var ev struct{ Addr string }
	json.Unmarshal([]byte(line), &ev)
	if !strings.HasPrefix(ev.Addr, "127.0.0.1:") {
		t.Errorf("target --listen :0 listens on %q (event %s), want 127.0.0.1", ev.Addr, line)
	}
}
