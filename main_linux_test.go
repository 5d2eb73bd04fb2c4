package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connlimit/connlimit/engine"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// asMain makes the test binary behave as connlimit, so tests exec real
// processes (the CLI and the target child) without a separate build.
const asMain = "CONNLIMIT_TEST_AS_MAIN"

var testExe string

func TestMain(m *testing.M) {
	// Fuzz workers are this binary too, and inherit the environment.
	if os.Getenv(asMain) == "1" && !slices.ContainsFunc(os.Args, func(a string) bool { return strings.HasPrefix(a, "-test.fuzzworker") }) {
		main()
		return
	}
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	testExe = exe
	os.Setenv(asMain, "1") // for the targets that in-process runs start
	goleak.VerifyTestMain(m)
}

// cli runs connlimit as a separate process and returns stdout, stderr and the exit status.
func cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(testExe, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// summaryJSON is the part of the JSON report the tests read.
type summaryJSON struct {
	SchemaVersion int            `json:"schema_version"`
	Interrupted   bool           `json:"interrupted"`
	FirstLimit    string         `json:"first_limit"`
	FirstLimitAt  int64          `json:"first_limit_at"`
	Setting       string         `json:"first_limit_setting"`
	Value         string         `json:"first_limit_value"`
	Fix           string         `json:"first_limit_fix"`
	Attempted     int            `json:"attempted"`
	Probe         string         `json:"probe"`
	Outcomes      map[string]int `json:"outcomes"`
	Latency       map[string]int `json:"connect_latency_us"`
	Target        struct {
		PID          int    `json:"pid"`
		NoFileSoft   uint64 `json:"nofile_soft"`
		Accepted     int64  `json:"accepted"`
		AcceptErrors int64  `json:"accept_errors"`
		Shed         int64  `json:"shed"`
		FirstEMFILE  *struct {
			Accepted      int64 `json:"accepted"`
			FDsOpen       int   `json:"fds_open"`
			SlotsUsed     int   `json:"slots_used"`
			AboveLimitFDs []any `json:"above_limit_fds"`
			OtherFDs      []struct {
				FD   int    `json:"fd"`
				Kind string `json:"kind"`
			} `json:"other_fds"`
		} `json:"first_emfile"`
	} `json:"target"`
	Forwarder *struct {
		NoFileSoft  uint64 `json:"nofile_soft"`
		Accepted    int64  `json:"accepted"`
		Forwarded   int64  `json:"forwarded"`
		DialErrors  int64  `json:"dial_errors"`
		FirstEMFILE *struct {
			Phase     string `json:"phase"`
			SlotsUsed int    `json:"slots_used"`
		} `json:"first_emfile"`
	} `json:"forwarder"`
	Generator struct {
		SourceAddrs int `json:"source_addrs"`
		RampProcs   int `json:"ramp_procs"`
	} `json:"generator"`
	Generators []struct {
		PID         int   `json:"pid"`
		Connections int   `json:"connections"`
		Served      int64 `json:"served"`
	} `json:"generators"`
	Targets []struct {
		PID         int   `json:"pid"`
		Accepted    int64 `json:"accepted"`
		FirstEMFILE *struct {
			SlotsUsed int   `json:"slots_used"`
			Accepted  int64 `json:"accepted"`
		} `json:"first_emfile"`
	} `json:"targets"`
	Processes []processJSON `json:"target_processes"`
	Segments  *struct {
		PayloadBytes int    `json:"payload_bytes"`
		MSSUsed      int    `json:"mss_used"`
		DataSegsOut  int    `json:"data_segs_out"`
		DataSegsIn   int    `json:"data_segs_in"`
		Split        string `json:"split"`
		Connections  int    `json:"connections"`
	} `json:"segments"`
	Reasons []struct {
		Outcome string `json:"outcome"`
		Reason  string `json:"reason"`
		Count   int    `json:"count"`
	} `json:"reasons"`
	Gates []struct {
		Gate   string `json:"gate"`
		Passed bool   `json:"passed"`
	} `json:"gates"`
	Died *struct {
		Role       string `json:"role"`
		PID        int    `json:"pid"`
		Signal     string `json:"signal"`
		ExitStatus int    `json:"exit_status"`
		After      int64  `json:"after"`
		Lost       int64  `json:"lost"`
	} `json:"died"`
	Kernel struct {
		Namespace      string         `json:"namespace"`
		Exact          bool           `json:"exact"`
		ListenBacklog  int64          `json:"listen_backlog"`
		AcceptQueueMax int64          `json:"accept_queue_max"`
		AcceptQueueEnd int64          `json:"accept_queue_end"`
		TCPExt         map[string]int `json:"tcpext_delta"`
	} `json:"kernel"`
}

type processJSON struct {
	PID          int    `json:"pid"`
	Name         string `json:"name"`
	Cmdline      string `json:"cmdline"`
	FoundBy      string `json:"found_by"`
	Readable     bool   `json:"readable"`
	Note         string `json:"note"`
	NoFileSoft   uint64 `json:"nofile_soft"`
	SlotsUsedMax int    `json:"slots_used_max"`
	AtLimit      bool   `json:"at_limit"`
}

func readSummary(t *testing.T, path string) summaryJSON {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s summaryJSON
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// noProcessLeft fails the test if any process started from this binary
// (a target, a CLI run) is still alive.
func noProcessLeft(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		left := ourProcesses()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left behind: %v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ourProcesses() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && exe == testExe {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestRunFindsTargetEMFILE(t *testing.T) {
	noLeftovers(t)
	for _, nofile := range []int{64, 300} {
		t.Run(strconv.Itoa(nofile), func(t *testing.T) {
			dir := t.TempDir()
			js, csvPath, tl := filepath.Join(dir, "s.json"), filepath.Join(dir, "c.csv"), filepath.Join(dir, "t.csv")
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"run", "--connections", "500", "--target-nofile", strconv.Itoa(nofile),
				"--greeting-timeout", "300ms", "--hold", "0s", "--json", js, "--csv", csvPath, "--timeline", tl, "-q"},
				&stdout, &stderr)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, stderr.String())
			}
			noProcessLeft(t)
			s := readSummary(t, js)
			e := s.Target.FirstEMFILE
			if s.FirstLimit != "target-fd-limit" || e == nil {
				t.Fatalf("first_limit %q, first_emfile %v\n%s", s.FirstLimit, e, stdout.String())
			}
			if s.Target.NoFileSoft != uint64(nofile) || e.SlotsUsed != nofile || e.FDsOpen != nofile+len(e.AboveLimitFDs) {
				t.Errorf("soft %d, slots used at EMFILE %d, fds open %d (%d above the limit), want %d",
					s.Target.NoFileSoft, e.SlotsUsed, e.FDsOpen, len(e.AboveLimitFDs), nofile)
			}
			if got := e.Accepted + int64(len(e.OtherFDs)); got != int64(nofile) {
				t.Errorf("accepted %d + other fds %d = %d, want the soft limit %d", e.Accepted, len(e.OtherFDs), got, nofile)
			}
			if s.Attempted != 500 || sum(s.Outcomes) != 500 {
				t.Errorf("attempted %d, outcomes sum %d (%v), want 500", s.Attempted, sum(s.Outcomes), s.Outcomes)
			}
			if int64(s.Outcomes["served"]) != e.Accepted || s.Outcomes["queued"] != 500-int(e.Accepted) {
				t.Errorf("outcomes %v with %d accepted at EMFILE", s.Outcomes, e.Accepted)
			}
			kinds := map[string]int{}
			for _, fd := range e.OtherFDs {
				kinds[fd.Kind]++
			}
			if kinds["stdio"] != 3 || kinds["listener"] != 1 || kinds["event pipe"] != 1 {
				t.Errorf("other fds %v: want 3 stdio, 1 listener, 1 event pipe", kinds)
			}
			want := "accepted " + strconv.Itoa(int(e.Accepted)) + " connections; accept() then failed with EMFILE"
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("summary lacks %q:\n%s", want, stdout.String())
			}
			if k := s.Kernel; k.AcceptQueueEnd != int64(s.Outcomes["queued"]) || k.ListenBacklog != somaxconn(t) || k.Namespace != "host" || k.Exact {
				t.Errorf("kernel view %+v: want the %d queued in the accept queue, backlog = somaxconn, host namespace, not exact", k, s.Outcomes["queued"])
			}
			if s.Setting != "the target's RLIMIT_NOFILE (soft)" || s.Value != strconv.Itoa(nofile) || !strings.Contains(s.Fix, "ulimit -n") {
				t.Errorf("verdict detail %q = %q, fix %q", s.Setting, s.Value, s.Fix)
			}
			checkCSV(t, csvPath, s)
			checkTimeline(t, tl)
		})
	}
}

func somaxconn(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func checkCSV(t *testing.T, path string, s summaryJSON) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rows[0], ","); got != "seq,fd,local_ip,local_port,remote_ip,remote_port,outcome,errno,connect_us,greeting_us,target_seq,http_status,reason" {
		t.Fatalf("header %q", got)
	}
	rows = rows[1:]
	if len(rows) != s.Attempted {
		t.Fatalf("%d rows, want one per attempt (%d)", len(rows), s.Attempted)
	}
	counts, ports, targetSeqs := map[string]int{}, map[string]bool{}, map[string]bool{}
	for i, r := range rows {
		if r[0] != strconv.Itoa(i+1) {
			t.Fatalf("row %d: seq %s", i+1, r[0])
		}
		counts[r[6]]++
		if r[3] != "" {
			if ports[r[3]] {
				t.Fatalf("row %d: local port %s used twice", i+1, r[3])
			}
			ports[r[3]] = true
		}
		if r[6] == "served" {
			if r[10] == "" || targetSeqs[r[10]] {
				t.Fatalf("row %d: served with target_seq %q (missing or repeated)", i+1, r[10])
			}
			targetSeqs[r[10]] = true
		}
	}
	for name, n := range s.Outcomes {
		if counts[name] != n {
			t.Errorf("CSV has %d %s, JSON %d", counts[name], name, n)
		}
	}
}

func checkTimeline(t *testing.T, path string) {
	t.Helper()
	rows := readCSV(t, path)
	if strings.Join(rows[0], ",") != "elapsed_s,attempted,connecting,open,served,queued,failed,target_accepted,target_fds,target_accept_errors,"+
		"accept_queue,listen_backlog,listen_overflows,listen_drops,syncookies_sent,reqq_full_drop,reqq_full_do_cookies,connect_timeouts,target_nofile,forwarder_fds,forwarder_nofile,forwarder_errors" {
		t.Fatalf("timeline header %v", rows[0])
	}
	last := rows[len(rows)-1]
	if len(rows) < 2 || last[1] != "500" {
		t.Errorf("timeline: %d rows, last %v", len(rows)-1, last)
	}
	// The kernel's accept queue fills while the target is out of descriptors.
	queueSeen := false
	for _, r := range rows[1:] {
		if n, err := strconv.Atoi(r[10]); err == nil && n > 0 && r[11] != "" {
			queueSeen = true
		}
	}
	if !queueSeen {
		t.Errorf("no timeline row has an accept_queue above 0")
	}
}

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

func TestGeneratorHardLimitTooLow(t *testing.T) {
	noLeftovers(t)
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// One process forced: the connections do not fit its hard limit.
	_, stderr, code := cli(t, "--procs", "1", "--connections", strconv.FormatUint(r.Max+1, 10), "--json", filepath.Join(dir, "s.json"))
	if code != 3 || !strings.Contains(stderr, "hard limit") || !strings.Contains(stderr, "ulimit -Hn") {
		t.Errorf("exit %d, stderr %q: want 3 and the hard-limit fix", code, stderr)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files left: %v", ents)
	}
}

// A low hard limit is the environment's: never blamed on a flag the user
// did not pass, one line with the fix and exit 3 when nothing fits, and the
// built-in target given what there is when its default does not fit.
func TestLowHardLimit(t *testing.T) {
	noLeftovers(t)
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("no prlimit")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct {
		nofile string
		args   []string
		code   int
		want   string // in stderr
	}{
		{"300", []string{"--target", ln.Addr().String(), "--connections", "20", "--hold", "0s"}, 0, ""},
		{"300", []string{"--connections", "200", "--hold", "0s"}, 0, "the target gets 300"},
		{"300", []string{"-q", "--target-nofile", "1024"}, 3, "ulimit -Hn 1024"},
		{"300", []string{"-q", "--procs", "1", "--nofile", "400"}, 3, "ulimit -Hn 400"},
		{"30", []string{"-q", "--connections", "20"}, 3, "ulimit -Hn"},
		{"10", []string{"-q"}, 3, "ulimit -Hn"},
		{"6", []string{"-q"}, 3, "ulimit -Hn"},
		{"5", []string{"limits"}, 3, "ulimit -Hn"},
	} {
		t.Run(tc.nofile+" "+strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command("prlimit", append([]string{"--nofile=" + tc.nofile + ":" + tc.nofile, testExe}, tc.args...)...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			code := 0
			if err := cmd.Run(); err != nil {
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Fatal(err)
				}
				code = ee.ExitCode()
			}
			if code != tc.code || !strings.Contains(stderr.String(), tc.want) || strings.Contains(stderr.String(), "--target-nofile") != slices.Contains(tc.args, "--target-nofile") {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tc.code, tc.want)
			}
			if code != 0 && strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
				t.Errorf("stderr is not one line: %q", stderr.String())
			}
		})
	}
	noProcessLeft(t)
}

func TestLimitsShowsInheritedSoftLimit(t *testing.T) {
	noLeftovers(t)
	cmd := exec.Command("sh", "-c", `ulimit -Sn 512 && exec "$0" limits`, testExe)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"inherited soft         512", "fs.nr_open", "fs.file-max", "ip_local_port_range",
		"net.core.somaxconn", "tcp_max_syn_backlog", "tcp_syncookies", "tcp_syn_retries",
		"one source address can open at most", "one process holds at most", "1000000 connections: "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("limits output lacks %q:\n%s", want, out)
		}
	}
	// No shell on PATH: the parent's /proc/PPID/limits says it, and the
	// output says so. "; true" keeps sh the parent instead of exec'ing.
	out, err = exec.Command("sh", "-c", `ulimit -Sn 600; env -i `+asMain+`=1 "$0" limits; true`, testExe).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "inherited soft         600") || !strings.Contains(string(out), "/limits; no shell to ask") {
		t.Errorf("without a shell: %v\n%s", err, out)
	}
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		t.Fatal(err)
	}
	procs := (1_000_000 + int(r.Max) - engine.GeneratorReserve - 1) / (int(r.Max) - engine.GeneratorReserve)
	if k := engine.RampPerCPU * runtime.NumCPU(); procs > k && !strings.Contains(string(out), fmt.Sprintf("%d generator processes (%d connecting at once)", procs, k)) {
		t.Errorf("limits output lacks the generators connecting at once for a million:\n%s", out)
	}
}

// cmdline is /proc/PID/cmdline with spaces for NULs.
func cmdline(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.ReplaceAll(string(b), "\x00", " ")
}

// childWith waits for one of our processes whose command line holds word.
func childWith(t *testing.T, word string) int {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, pid := range ourProcesses() {
			if strings.Contains(cmdline(pid), " "+word+" ") {
				return pid
			}
		}
	}
	t.Fatalf("no %s process", word)
	return 0
}

// A target (or the forwarder in front of it) killed mid-run is reported as
// dead, by name, signal and count: exit 3, verdict target-died.
func TestTargetKilledMidRun(t *testing.T) {
	noLeftovers(t)
	for _, tc := range []struct {
		role, word string
		args       []string
	}{
		{"target", "target", nil},
		{"forwarder", "forward", []string{"--forward"}},
	} {
		t.Run(tc.role, func(t *testing.T) {
			dir := t.TempDir()
			js := filepath.Join(dir, "s.json")
			done := make(chan error, 1)
			var stdout, stderr bytes.Buffer
			go func() {
				done <- run(context.Background(), append([]string{"run", "--connections", "2000", "--rate", "500", "--json", js, "-q"}, tc.args...), &stdout, &stderr)
			}()
			pid := childWith(t, tc.word)
			time.Sleep(300 * time.Millisecond)
			syscall.Kill(pid, syscall.SIGKILL)
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("run did not notice the death")
			}
			if exitCode(err) != 3 || !strings.Contains(err.Error(), tc.role+" (pid "+strconv.Itoa(pid)+") was killed by SIGKILL") {
				t.Fatalf("run = %v (exit %d), want exit 3 naming the %s and SIGKILL", err, exitCode(err), tc.role)
			}
			if strings.Contains(err.Error(), "listening") {
				t.Errorf("the error quotes the %s's log: %v", tc.role, err)
			}
			s := readSummary(t, js)
			if s.Attempted == 0 || s.Attempted >= 2000 || sum(s.Outcomes) != s.Attempted {
				t.Errorf("attempted %d, outcomes %v", s.Attempted, s.Outcomes)
			}
			if d := s.Died; s.FirstLimit != "target-died" || d == nil || d.Role != tc.role || d.PID != pid || d.Signal != "SIGKILL" || d.ExitStatus != -1 || d.After == 0 {
				t.Errorf("first limit %s, died %+v; want target-died, the %s's pid and SIGKILL", s.FirstLimit, d, tc.role)
			}
			if !strings.Contains(stdout.String(), "first limit: target-died") || !strings.Contains(stdout.String(), tc.role+" (pid "+strconv.Itoa(pid)+") was killed by SIGKILL") {
				t.Errorf("summary does not say the %s died:\n%s", tc.role, stdout.String())
			}
			noProcessLeft(t)
		})
	}
}

// A generator worker killed mid-ramp stops the run at once (exit 3, verdict
// generator-died) and loses no attempt: the ones it made are counted, as
// lost, from the counters it shared, in the summary and in the CSV.
func TestWorkerKilledMidRun(t *testing.T) {
	noLeftovers(t)
	dir := t.TempDir()
	js, csvPath := filepath.Join(dir, "s.json"), filepath.Join(dir, "c.csv")
	done := make(chan error, 1)
	var stdout, stderr bytes.Buffer
	go func() {
		done <- run(context.Background(), []string{"run", "--procs", "4", "--connections", "8000", "--rate", "1000", "--json", js, "--csv", csvPath, "-q"}, &stdout, &stderr)
	}()
	pid := childWith(t, "worker")
	time.Sleep(1500 * time.Millisecond)
	syscall.Kill(pid, syscall.SIGKILL)
	killed := time.Now()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("run did not notice the worker died")
	}
	// The ramp had about 6 s to go: a run that noticed only at its end took that long.
	if took := time.Since(killed); took > 4*time.Second {
		t.Errorf("the run took %v after the kill to end", took)
	}
	if exitCode(err) != 3 || !strings.Contains(err.Error(), "generator worker (pid "+strconv.Itoa(pid)+") was killed by SIGKILL") {
		t.Fatalf("run = %v (exit %d), want exit 3 naming the worker and SIGKILL", err, exitCode(err))
	}
	s := readSummary(t, js)
	if sum(s.Outcomes) != s.Attempted || s.Outcomes["lost"] == 0 || s.Outcomes["lost"] > 2000 {
		t.Errorf("attempted %d, outcomes %v: want them to sum, with the dead worker's as lost", s.Attempted, s.Outcomes)
	}
	if d := s.Died; s.FirstLimit != "generator-died" || d == nil || d.Role != "generator" || d.PID != pid || d.Lost != int64(s.Outcomes["lost"]) {
		t.Errorf("first limit %s, died %+v", s.FirstLimit, d)
	}
	if rows := readCSV(t, csvPath); len(rows) != s.Attempted+1 {
		t.Errorf("CSV has %d rows for %d attempts", len(rows)-1, s.Attempted)
	}
	noProcessLeft(t)
}

// runJSON runs connlimit in-process and returns its JSON summary.
func runJSON(t *testing.T, args ...string) summaryJSON {
	t.Helper()
	js := filepath.Join(t.TempDir(), "s.json")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), append([]string{"run", "-q", "--json", js}, args...), &stdout, &stderr); err != nil {
		t.Fatalf("run %v: %v\n%s", args, err, stderr.String())
	}
	noProcessLeft(t)
	s := readSummary(t, js)
	if sum(s.Outcomes) != s.Attempted {
		t.Fatalf("outcomes %v do not sum to %d", s.Outcomes, s.Attempted)
	}
	return s
}

// Each accept policy shows its clients something different once the target
// is out of descriptors.
func TestAcceptPolicies(t *testing.T) {
	noLeftovers(t)
	const n = 300
	common := []string{"--connections", strconv.Itoa(n), "--target-nofile", "64", "--rate", "2000",
		"--greeting-timeout", "300ms", "--hold", "0s"}
	tests := []struct {
		policy string
		check  func(t *testing.T, s summaryJSON, rest int)
	}{
		{"backoff", func(t *testing.T, s summaryJSON, rest int) {
			if s.Outcomes["queued"] != rest {
				t.Errorf("queued %d, want the %d not accepted", s.Outcomes["queued"], rest)
			}
		}},
		{"shed", func(t *testing.T, s summaryJSON, rest int) {
			if s.Outcomes["closed"] != rest || s.Target.Shed != int64(rest) {
				t.Errorf("closed %d, target shed %d, want both %d", s.Outcomes["closed"], s.Target.Shed, rest)
			}
		}},
		{"stop", func(t *testing.T, s summaryJSON, rest int) {
			if s.Outcomes["refused"] == 0 || s.Outcomes["refused"]+s.Outcomes["closed"] != rest {
				t.Errorf("refused %d + closed %d, want %d with some refused", s.Outcomes["refused"], s.Outcomes["closed"], rest)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.policy, func(t *testing.T) {
			s := runJSON(t, append(common, "--on-emfile", tc.policy)...)
			if s.FirstLimit != "target-fd-limit" || s.Target.FirstEMFILE == nil {
				t.Fatalf("first limit %s", s.FirstLimit)
			}
			served := s.Outcomes["served"]
			if int64(served) != s.Target.FirstEMFILE.Accepted {
				t.Errorf("served %d, accepted at EMFILE %d", served, s.Target.FirstEMFILE.Accepted)
			}
			tc.check(t, s, n-served)
		})
	}
}

// A small backlog: backlog+1 connections wait in the accept queue, the
// kernel drops the SYNs of the rest.
func TestSmallBacklog(t *testing.T) {
	noLeftovers(t)
	// Paced, so the target keeps up until it runs out of descriptors.
	// In a private namespace (as root) ListenOverflows is exact: one dropped
	// SYN per timed-out connect, the timeout coming before the first retransmit.
	args := []string{"--connections", "80", "--target-nofile", "32", "--backlog", "4", "--rate", "500",
		"--connect-timeout", "500ms", "--greeting-timeout", "300ms", "--hold", "0s"}
	private := os.Geteuid() == 0
	if private {
		args = append(args, "--netns")
	}
	s := runJSON(t, args...)
	served, timedOut := s.Outcomes["served"], s.Outcomes["connect-timeout"]
	if s.FirstLimit != "target-fd-limit" {
		t.Errorf("first limit %s, want target-fd-limit", s.FirstLimit)
	}
	if s.Outcomes["queued"] != 5 || timedOut != 80-served-5 {
		t.Errorf("outcomes %v: want 5 queued (backlog 4 + 1) and the rest connect-timeout", s.Outcomes)
	}
	overflows := s.Kernel.TCPExt["ListenOverflows"]
	if private && overflows != timedOut || !private && overflows < timedOut {
		t.Errorf("ListenOverflows +%d for %d timed-out connects (private namespace: %v)", overflows, timedOut, private)
	}
}

// TestVerdicts produces every first_limit a run can produce on loopback
// without root. ephemeral-ports needs a private namespace (TestNetNS...);
// system-fd-limit would exhaust the machine's fs.file-max, which is shared.
func TestVerdicts(t *testing.T) {
	noLeftovers(t)
	quick := []string{"--greeting-timeout", "300ms", "--hold", "0s"}
	tests := []struct {
		verdict string
		args    []string
		at      int64 // -1: not exact
		check   func(t *testing.T, s summaryJSON)
	}{
		{"none", []string{"--connections", "50"}, 50, func(t *testing.T, s summaryJSON) {
			if s.Outcomes["served"] != 50 || s.Setting != "" || s.Fix != "" {
				t.Errorf("outcomes %v, setting %q, fix %q", s.Outcomes, s.Setting, s.Fix)
			}
		}},
		{"target-fd-limit", []string{"--connections", "100", "--target-nofile", "32"}, -1, func(t *testing.T, s summaryJSON) {
			if s.Target.FirstEMFILE == nil || s.FirstLimitAt != s.Target.FirstEMFILE.Accepted || s.Value != "32" {
				t.Errorf("at %d, first EMFILE %+v, value %q", s.FirstLimitAt, s.Target.FirstEMFILE, s.Value)
			}
		}},
		{"target-not-accepting", []string{"--connections", "30", "--max-conns", "10"}, 10, func(t *testing.T, s summaryJSON) {
			if s.Outcomes["served"] != 10 || s.Outcomes["queued"] != 20 || s.Value != "10" || s.Target.FirstEMFILE != nil {
				t.Errorf("outcomes %v, value %q", s.Outcomes, s.Value)
			}
		}},
		{"target-closed", []string{"--connections", "30", "--max-conns", "10", "--on-max-conns", "close"}, 10, func(t *testing.T, s summaryJSON) {
			if s.Outcomes["served"] != 10 || s.Outcomes["closed"] != 20 {
				t.Errorf("outcomes %v", s.Outcomes)
			}
		}},
		{"refused", []string{"--connections", "30", "--max-conns", "10", "--on-max-conns", "stop", "--rate", "200"}, 10, func(t *testing.T, s summaryJSON) {
			if s.Outcomes["served"] != 10 || s.Outcomes["refused"] == 0 || s.Outcomes["refused"]+s.Outcomes["closed"] != 20 {
				t.Errorf("outcomes %v: want 10 served, the rest refused (a queued one reset: closed)", s.Outcomes)
			}
		}},
		{"accept-queue-full", []string{"--connections", "30", "--backlog", "2", "--accept-delay", "200ms",
			"--connect-timeout", "300ms", "--greeting-timeout", "5s"}, -1, func(t *testing.T, s summaryJSON) {
			timedOut := s.Outcomes["connect-timeout"]
			// Each timed-out connect sent one SYN (the first retransmit is at 1 s);
			// in the host namespace other traffic may add drops, never remove them.
			if s.Outcomes["served"] < 3 || timedOut < 20 || s.Kernel.TCPExt["ListenOverflows"] < timedOut ||
				s.Kernel.ListenBacklog != 2 || s.Kernel.AcceptQueueMax > 3 {
				t.Errorf("outcomes %v, kernel %+v", s.Outcomes, s.Kernel)
			}
		}},
		{"client-fd-limit", []string{"--connections", "200", "--nofile", "100"}, -1, func(t *testing.T, s summaryJSON) {
			if n := s.Outcomes["client-fd-limit"]; n == 0 || s.Outcomes["served"]+n != 200 || s.Value != "100" || s.FirstLimitAt > 100 {
				t.Errorf("outcomes %v, at %d, value %q", s.Outcomes, s.FirstLimitAt, s.Value)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.verdict, func(t *testing.T) {
			// The case's own flags come last: pflag keeps the last value.
			s := runJSON(t, append(append([]string{}, quick...), tc.args...)...)
			if s.FirstLimit != tc.verdict || (tc.at >= 0 && s.FirstLimitAt != tc.at) {
				t.Fatalf("first limit %s at %d, want %s at %d; outcomes %v", s.FirstLimit, s.FirstLimitAt, tc.verdict, tc.at, s.Outcomes)
			}
			if tc.verdict != "none" && (s.Setting == "" || s.Value == "" || s.Fix == "") {
				t.Errorf("verdict without its setting %q, value %q or fix %q", s.Setting, s.Value, s.Fix)
			}
			tc.check(t, s)
		})
	}
}

// netnsOrSkip skips tests that need a private network namespace when this
// process cannot create one (not root): CI runs as root.
func netnsOrSkip(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root: the --netns tests must run there")
		}
		t.Skip("--netns needs root")
	}
}

func TestNetNSEphemeralPorts(t *testing.T) {
	noLeftovers(t)
	netnsOrSkip(t)
	s := runJSON(t, "--netns", "--port-range", "40000-40099", "--connections", "150", "--hold", "0s")
	if s.FirstLimit != "ephemeral-ports" || s.FirstLimitAt != 100 || s.Outcomes["served"] != 100 || s.Outcomes["no-ephemeral-port"] != 50 {
		t.Errorf("first limit %s at %d, outcomes %v: want ephemeral-ports at 100 with 100 ports", s.FirstLimit, s.FirstLimitAt, s.Outcomes)
	}
	if !strings.Contains(s.Value, "40000 40099 (100 ports") || s.Kernel.Namespace != "private" || !s.Kernel.Exact {
		t.Errorf("value %q, kernel %+v", s.Value, s.Kernel)
	}
}

// TestNetNSExactCounters: with somaxconn 4 the accept queue holds 5, and in a
// private namespace ListenOverflows counts exactly the dropped SYNs: one per
// timed-out connect, since the timeout comes before the first retransmit.
// Paced, so the target keeps up until its cap rather than losing the race
// to a burst that fills the queue first.
func TestNetNSExactCounters(t *testing.T) {
	noLeftovers(t)
	netnsOrSkip(t)
	s := runJSON(t, "--netns", "--somaxconn", "4", "--max-conns", "10", "--connections", "60", "--rate", "200",
		"--connect-timeout", "500ms", "--greeting-timeout", "300ms", "--hold", "0s")
	timedOut := s.Outcomes["connect-timeout"]
	if s.FirstLimit != "target-not-accepting" || s.Outcomes["served"] != 10 || s.Outcomes["queued"] != 5 || timedOut != 45 {
		t.Errorf("first limit %s, outcomes %v: want 10 served, 5 queued (somaxconn 4 + 1), 45 connect-timeout", s.FirstLimit, s.Outcomes)
	}
	if k := s.Kernel; k.ListenBacklog != 4 || k.AcceptQueueEnd != 5 || k.TCPExt["ListenOverflows"] != timedOut || !k.Exact {
		t.Errorf("kernel %+v: want backlog 4, queue 5, ListenOverflows == %d exactly", k, timedOut)
	}
	noProcessLeft(t)
}

// TestNetNSNeedsRoot runs connlimit as nobody: --netns must fail with the
// reason and the way out, exit 3, before anything is written.
// asNobody copies the test binary where user nobody can run it, in a
// directory nobody may write, and returns a command that runs it as nobody.
func asNobody(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("dropping to nobody needs root")
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // TempDir's parent is 0700 too
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(dir, "connlimit")
	b, err := os.ReadFile(testExe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	return cmd, dir
}

// TestNetNSNeedsRoot runs connlimit as nobody: --netns must fail with the
// reason and the way out, exit 3, before anything is written.
func TestNetNSNeedsRoot(t *testing.T) {
	noLeftovers(t)
	cmd, dir := asNobody(t)
	cmd.Args = append(cmd.Args, "run", "--netns", "--json", filepath.Join(dir, "s.json"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("run --netns as nobody: %v, want exit 3; stderr %q", err, stderr.String())
	}
	if msg := stderr.String(); !strings.Contains(msg, "--netns") || !strings.Contains(msg, "needs root") || strings.Count(msg, "\n") != 1 {
		t.Errorf("stderr %q: want one line naming --netns and root", msg)
	}
	if _, err := os.Stat(filepath.Join(dir, "s.json")); !os.IsNotExist(err) {
		t.Errorf("s.json exists after the refused run: %v", err)
	}
}

// A target owned by another user (here root, with connlimit as nobody):
// the report says its process could not be read and the verdict rests on
// what the clients saw.
func TestTargetProcessNotReadable(t *testing.T) {
	noLeftovers(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // never accepts: clients queue
	cmd, dir := asNobody(t)
	js := filepath.Join(dir, "s.json")
	cmd.Args = append(cmd.Args, "run", "-q", "--target", ln.Addr().String(), "--probe", "greeting", "--connections", "5",
		"--greeting-timeout", "200ms", "--hold", "0s", "--json", js)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("run as nobody: %v\n%s", err, stderr.String())
	}
	s := readSummary(t, js)
	if s.FirstLimit != "target-not-accepting" || len(s.Processes) != 1 || s.Processes[0].Readable ||
		!strings.Contains(s.Processes[0].Note, "cannot read") {
		t.Errorf("first limit %s, processes %+v: want target-not-accepting and one unreadable owner with a note", s.FirstLimit, s.Processes)
	}
	if !strings.Contains(stdout.String(), "run connlimit as that user or as root") {
		t.Errorf("summary does not say how to see the process:\n%s", stdout.String())
	}
}

func TestNetNSFlagsNeedNetNS(t *testing.T) {
	noLeftovers(t)
	for _, args := range [][]string{{"--port-range", "40000-40099"}, {"--somaxconn", "8"}} {
		_, stderr, code := cli(t, append([]string{"run"}, args...)...)
		if code != 2 || !strings.Contains(stderr, args[0]+": valid only with --netns") {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
	}
}
