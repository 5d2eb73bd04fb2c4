package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// asMain makes the test binary behave as connlimit, so tests exec real
// processes (the CLI and the target child) without a separate build.
const asMain = "CONNLIMIT_TEST_AS_MAIN"

var testExe string

func TestMain(m *testing.M) {
	if addr := os.Getenv(asHog); addr != "" {
		memoryHog(addr)
		return
	}
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
	validate(t, schemaFor(b), b)
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

// ourProcesses are the processes running this test binary besides this
// one. A child this process has forked but not yet exec'd (a run starting
// nft or cat) shows this binary and this command line for a moment: it is
// skipped, since it is about to become another program.
func ourProcesses() []int {
	self, _ := os.ReadFile("/proc/self/cmdline")
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || exe != testExe {
			continue
		}
		if cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && bytes.Equal(cmdline, self) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
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
