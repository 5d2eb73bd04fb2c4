package report

import (
	"bytes"
	"encoding/csv"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connlimit/connlimit/limits"
	"github.com/connlimit/connlimit/loadgen"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test ./report -update after checking):\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}

var target = netip.MustParseAddrPort("127.0.0.1:40000")

func withLocal(a netip.AddrPort, r loadgen.Result) loadgen.Result {
	r.SetLocal(a)
	return r
}

// fixture: 3 served, 2 queued, one attempt that never got a socket.
func fixtureResults() []loadgen.Result {
	local := func(p uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p) }
	ms := time.Millisecond
	return []loadgen.Result{
		withLocal(local(50001), loadgen.Result{Seq: 1, FD: 7, Outcome: loadgen.Served, Start: 0, Connect: 1 * ms, Greeting: ms / 2, TargetSeq: 1}),
		withLocal(local(50002), loadgen.Result{Seq: 2, FD: 8, Outcome: loadgen.Served, Start: ms, Connect: 2 * ms, Greeting: ms / 2, TargetSeq: 2}),
		withLocal(local(50003), loadgen.Result{Seq: 3, FD: 9, Outcome: loadgen.Served, Start: 2 * ms, Connect: 3 * ms, Greeting: ms / 2, TargetSeq: 3}),
		withLocal(local(50004), loadgen.Result{Seq: 4, FD: 10, Outcome: loadgen.Queued, Start: 3 * ms, Connect: 4 * ms}),
		withLocal(local(50005), loadgen.Result{Seq: 5, FD: 11, Outcome: loadgen.Queued, Start: 4 * ms, Connect: 5 * ms}),
		{Seq: 6, FD: -1, Outcome: loadgen.ClientFDLimit, Errno: syscall.EMFILE, Start: 5 * ms},
	}
}

func fixtureInput() Input {
	return Input{
		Requested: 6, Target: target, GeneratorID: 100,
		Attempts: loadgen.Attempts{Results: fixtureResults(), Reasons: map[int32]string{5: "EMFILE at socket()"},
			Segs: []loadgen.SegInfo{{BytesSent: 5000, BytesReceived: 5020, MSS: 1448, DataSegsOut: 4, DataSegsIn: 5},
				{BytesSent: 5000, BytesReceived: 5020, MSS: 1448, DataSegsOut: 4, DataSegsIn: 5, Retrans: 1},
				{BytesSent: 5000, BytesReceived: 5020, MSS: 1448, DataSegsOut: 4, DataSegsIn: 5}, {}, {}, {}}},
		Limits: Limits{Generator: limits.NoFile{Inherited: 1024, InheritedFrom: "child shell ulimit -Sn", Soft: 2048, Hard: 4096},
			Sysctls: limits.Sysctls{NrOpen: 1048576, FileMax: 100000, FileNrAllocated: 10, PortRange: limits.PortRange{Low: 32768, High: 60999},
				Somaxconn: 4096, TCPMaxSynBacklog: 2048, TCPSyncookies: 1, TCPSynRetries: 6}},
		TargetInfo: &Target{PID: 200, NoFileSoft: 16, NoFileHard: 4096, Accepted: 3, AcceptErrors: 4,
			FirstEMFILE: &FirstEMFILE{Errno: "EMFILE", Accepted: 3, FDsOpen: 17, SlotsUsed: 16,
				OtherFDs: []limits.FD{{Num: 0, Kind: "stdio", Link: "/dev/null"}, {Num: 1, Kind: "stdio", Link: "/dev/null"},
					{Num: 2, Kind: "stdio", Link: "pipe:[1]"}, {Num: 3, Kind: "event pipe", Link: "pipe:[2]"},
					{Num: 4, Kind: "cgroup", Link: "/sys/fs/cgroup/cpu.max"}, {Num: 5, Kind: "fd inventory", Link: "/proc/200/fd"},
					{Num: 6, Kind: "epoll", Link: "anon_inode:[eventpoll]"}, {Num: 7, Kind: "eventfd", Link: "anon_inode:[eventfd]"},
					{Num: 8, Kind: "listener", Link: "socket:[9]"}, {Num: 9, Kind: "inherited", Link: "/dev/null"},
					{Num: 10, Kind: "inherited", Link: "/dev/null"}, {Num: 11, Kind: "inherited", Link: "/dev/null"},
					{Num: 12, Kind: "inherited", Link: "/dev/null"}},
				AboveLimitFDs: []limits.FD{{Num: 251, Kind: "pipe", Link: "pipe:[3]"}}}},
		Probe: "greeting",
		Processes: []Process{{PID: 200, Name: "connlimit", Cmdline: "connlimit target --events-fd 3", FoundBy: "socket inode 9",
			Readable: true, NoFileSoft: 16, NoFileHard: 4096, FDsMax: 17, FDsEnd: 17, SlotsUsedMax: 16, AtLimit: true},
			{PID: 300, Name: "helper", FoundBy: "socket inode 9", Note: "cannot watch it: permission denied"}},
		Gates:   Gates{RequireServed: 3, HasRequireServed: true, ExpectLimit: LimitNone},
		Payload: 5000, MSSAsked: 1460,
		Kernel: &Kernel{Namespace: "host", ListenBacklog: 4096, AcceptQueueMax: 2, AcceptQueueEnd: 2,
			TCPExt: limits.TCPExt{ListenOverflows: 3, ListenDrops: 3}},
		Duration: 2500 * time.Millisecond,
	}
}

func TestBuild(t *testing.T) {
	s := Build(fixtureInput())
	if s.Attempted != 6 || s.Outcomes["served"] != 3 || s.Outcomes["queued"] != 2 || s.Outcomes["client-fd-limit"] != 1 {
		t.Errorf("outcomes %v", s.Outcomes)
	}
	if len(s.Outcomes) != len(loadgen.Outcomes()) {
		t.Errorf("outcomes has %d names, want every one of %d", len(s.Outcomes), len(loadgen.Outcomes()))
	}
	// 5 handshakes: 1..5 ms; nearest rank.
	if want := (Latency{P50: 3000, P90: 5000, P99: 5000, Max: 5000}); s.ConnectLatencyUS != want {
		t.Errorf("latency %+v, want %+v", s.ConnectLatencyUS, want)
	}
	// First socket at 0, last handshake at 4ms+5ms = 9ms: 5 in 9ms.
	if r := s.ConnectRatePerS; r < 555 || r > 556 {
		t.Errorf("rate %.1f, want 555.6", r)
	}
	if s.FirstLimit != LimitTargetFD || s.FirstLimitAt != 3 {
		t.Errorf("first limit %s at %d", s.FirstLimit, s.FirstLimitAt)
	}
}

func TestFirstLimitWithoutTargetEvidence(t *testing.T) {
	full := []Process{{PID: 1, Readable: true}, {PID: 2, Readable: true, AtLimit: true}}
	room := []Process{{PID: 1, Readable: true}}
	tests := []struct {
		outcomes []loadgen.Outcome
		want     string
		at       int64
		procs    []Process
	}{
		{[]loadgen.Outcome{loadgen.Served, loadgen.Served}, LimitNone, 2, nil},
		// A process behind the target seen out of descriptors explains target-side failures only.
		{[]loadgen.Outcome{loadgen.Served, loadgen.Queued}, LimitTargetFD, 1, full},
		{[]loadgen.Outcome{loadgen.Served, loadgen.Closed}, LimitTargetFD, 1, full},
		{[]loadgen.Outcome{loadgen.Served, loadgen.Queued}, LimitTargetNotAccepting, 1, room},
		{[]loadgen.Outcome{loadgen.ClientFDLimit}, LimitClientFD, 0, full},
		{[]loadgen.Outcome{loadgen.Refused}, LimitRefused, 0, full},
		{[]loadgen.Outcome{loadgen.Served, loadgen.Queued, loadgen.ConnectTimeout}, LimitTargetNotAccepting, 1, nil},
		{[]loadgen.Outcome{loadgen.Served, loadgen.ConnectTimeout, loadgen.Queued}, LimitAcceptQueueFull, 1, nil},
		{[]loadgen.Outcome{loadgen.Closed}, LimitTargetClosed, 0, nil},
		{[]loadgen.Outcome{loadgen.Refused}, LimitRefused, 0, nil},
		// "none" means every attempt was served: a wrong reply or an unknown error is a failure of its own.
		{[]loadgen.Outcome{loadgen.Served, loadgen.Other, loadgen.ClientFDLimit}, LimitOtherError, 1, nil},
		{[]loadgen.Outcome{loadgen.Served, loadgen.Corrupt, loadgen.Served}, LimitCorruptReply, 1, nil},
		{[]loadgen.Outcome{loadgen.Served, loadgen.Lost}, LimitGeneratorDied, 1, nil},
		{[]loadgen.Outcome{loadgen.SystemFDLimit}, LimitSystemFD, 0, nil},
		{[]loadgen.Outcome{loadgen.Served, loadgen.Served, loadgen.NoEphemeralPort}, LimitEphemeralPorts, 2, nil},
	}
	for _, tc := range tests {
		rs := make([]loadgen.Result, len(tc.outcomes))
		for i, o := range tc.outcomes {
			rs[i] = loadgen.Result{Seq: uint32(i + 1), Outcome: o}
		}
		if got, at := firstLimit(rs, &Target{}, tc.procs); got != tc.want || at != tc.at {
			t.Errorf("%v: first limit %s at %d, want %s at %d", tc.outcomes, got, at, tc.want, tc.at)
		}
	}
}

func TestTextGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteText(&b, Build(fixtureInput())); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary.txt", b.Bytes())
}

func TestJSONGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, Build(fixtureInput())); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary.json", b.Bytes())
}

func TestCSV(t *testing.T) {
	var b bytes.Buffer
	if err := WriteCSV(&b, []netip.AddrPort{target}, loadgen.Attempts{Results: fixtureResults(), Reasons: map[int32]string{5: "said, with a comma"}}); err != nil {
		t.Fatal(err)
	}
	golden(t, "attempts.csv", b.Bytes())
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 7 || len(rows[6]) != len(CSVHeader) {
		t.Fatalf("%d rows", len(rows))
	}
	if got := strings.Join(rows[6], ","); got != "6,,,,127.0.0.1,40000,client-fd-limit,EMFILE,,,,,said, with a comma" {
		t.Errorf("failed attempt row %q", got)
	}
}

func TestTimelineAndPlainProgress(t *testing.T) {
	var tl, prog bytes.Buffer
	timeline, err := NewTimeline(&tl)
	if err != nil {
		t.Fatal(err)
	}
	p := NewProgress(&prog, 10, 0)
	for i := range 25 {
		s := Sample{Elapsed: time.Duration(i) * 100 * time.Millisecond, Gen: loadgen.Snapshot{Attempted: int64(i)}, TargetFDs: i}
		if i > 0 { // the first sample saw no listener: its cells stay empty
			s.Kernel = limits.KernelSample{Listener: &limits.Listener{AcceptQueue: 5, Backlog: 4}, TCPExt: limits.TCPExt{ListenOverflows: int64(i)}}
		}
		if err := timeline.Write(s); err != nil {
			t.Fatal(err)
		}
		p.Update(s)
	}
	p.Finish(Sample{Elapsed: 2500 * time.Millisecond})
	if err := timeline.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(tl.String()), "\n")
	if len(lines) != 26 || lines[0] != strings.Join(TimelineHeader, ",") || lines[25] != "2.400,24,0,0,0,0,0,0,24,0,5,4,24,0,0,0,0,0,,,," || lines[1] != "0.000,0,0,0,0,0,0,0,0,0,,,0,0,0,0,0,0,,,," {
		t.Errorf("timeline %d lines, first %q last %q", len(lines), lines[0], lines[len(lines)-1])
	}
	// Plain lines at 0s, 1s, 2s and the final one: throttled, no carriage returns.
	if n := strings.Count(prog.String(), "\n"); n != 4 || strings.Contains(prog.String(), "\r") {
		t.Errorf("progress wrote %d lines:\n%q", n, prog.String())
	}
}

func TestOutputAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.csv")
	o, err := CreateOutput(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	o.WriteString("a,b\n")
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("final file visible before Commit: %v", err)
	}
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "a,b\n" {
		t.Errorf("committed %q", b)
	}
	a, err := CreateOutput(filepath.Join(dir, "gone.csv"), nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Abort()
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("after Commit and Abort the directory holds %v", ents)
	}
	for _, bad := range []string{filepath.Join(dir, "no", "such.csv"), dir} {
		if _, err := CreateOutput(bad, nil); err == nil {
			t.Errorf("CreateOutput(%s, nil) succeeded", bad)
		}
	}
}

// Every verdict but none names its setting, a value and a fix.
func TestLimitDetail(t *testing.T) {
	base := Build(fixtureInput())
	for _, v := range LimitWords() {
		s := base
		s.FirstLimit = v
		setting, value, fix := s.limitDetail()
		if (v == LimitNone) != (setting == "" && value == "" && fix == "") {
			t.Errorf("%s: setting %q value %q fix %q", v, setting, value, fix)
		}
	}
	s := base
	s.FirstLimit, s.Limits.Sysctls.FileMax = LimitSystemFD, 12345
	if setting, value, fix := s.limitDetail(); setting != "fs.file-max" || value != "12345" || !strings.Contains(fix, "sysctl -w fs.file-max") {
		t.Errorf("system-fd-limit: %q = %q, %q", setting, value, fix)
	}
	var b bytes.Buffer
	if err := WriteText(&b, s); err != nil || !strings.Contains(b.String(), "socket() failed with ENFILE") {
		t.Errorf("system-fd-limit text: %v\n%s", err, b.String())
	}
}

func TestGates(t *testing.T) {
	s := Build(fixtureInput()) // 3 served, first limit target-fd-limit, p99 5ms
	tests := []struct {
		gates  Gates
		passed []bool
	}{
		{Gates{}, nil},
		{Gates{RequireServed: 3, HasRequireServed: true}, []bool{true}},
		{Gates{RequireServed: 4, HasRequireServed: true}, []bool{false}},
		{Gates{RequireServed: 0, HasRequireServed: true, ExpectLimit: LimitTargetFD}, []bool{true, true}},
		{Gates{ExpectLimit: LimitNone}, []bool{false}},
		{Gates{MaxConnectP99: 5 * time.Millisecond}, []bool{true}},
		{Gates{MaxConnectP99: 4 * time.Millisecond, ExpectLimit: LimitRefused}, []bool{false, false}},
	}
	for _, tc := range tests {
		rs := tc.gates.Check(s)
		var passed []bool
		for _, r := range rs {
			passed = append(passed, r.Passed)
			if r.Gate == "" || r.Bound == "" || r.Got == "" {
				t.Errorf("%+v: gate result without its words: %+v", tc.gates, r)
			}
		}
		if !slices.Equal(passed, tc.passed) || Failed(rs) != slices.Contains(tc.passed, false) {
			t.Errorf("%+v: passed %v, want %v", tc.gates, passed, tc.passed)
		}
	}
	none := s
	none.Generator.Connected = 0
	if rs := (Gates{MaxConnectP99: time.Hour}).Check(none); rs[0].Passed {
		t.Error("a p99 gate passed with no handshake completed")
	}
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		payload, mss int
		want         string
	}{{5000, 1448, "1448+1448+1448+656"}, {5000, 988, "988×5+60"}, {2896, 1448, "1448+1448"}, {100, 1448, "100"}, {100, 0, ""}} {
		if got := split(tc.payload, tc.mss); got != tc.want {
			t.Errorf("split(%d, %d) = %q, want %q", tc.payload, tc.mss, got, tc.want)
		}
	}
}

func TestSegmentsCSV(t *testing.T) {
	var b bytes.Buffer
	in := fixtureInput()
	in.Attempts.Reasons = nil
	if err := WriteCSV(&b, []netip.AddrPort{target}, in.Attempts); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rows[0][len(CSVHeader):], ","); got != "bytes_sent,bytes_received,mss,data_segs_out,data_segs_in,retrans" {
		t.Errorf("segment header %q", got)
	}
	if got := strings.Join(rows[2][len(CSVHeader):], ","); got != "5000,5020,1448,4,5,1" {
		t.Errorf("row 2 segments %q", got)
	}
	if got := strings.Join(rows[4][len(CSVHeader):], ","); got != ",,,,," {
		t.Errorf("an attempt without TCP_INFO: %q", got)
	}
}

// The kernel's evidence renames what the clients' outcome alone would
// misname, and only with the evidence there.
func TestByKernelEvidence(t *testing.T) {
	listener := func(k Kernel) *Kernel { k.ListenBacklog, k.TCPExtRead = 4096, true; return &k }
	full := &Conntrack{Max: 256, CountMax: 256}
	for _, tc := range []struct {
		name  string
		limit string
		k     *Kernel
		want  string
	}{
		{"refused, listener there all along", LimitRefused, listener(Kernel{}), LimitPacketFilter},
		{"refused, listener closed", LimitRefused, listener(Kernel{ListenerGone: true}), LimitRefused},
		{"refused, listener never seen", LimitRefused, &Kernel{ListenBacklog: -1}, LimitRefused},
		{"refused, no kernel view", LimitRefused, nil, LimitRefused},
		{"timeouts, queue overflowed", LimitAcceptQueueFull, listener(Kernel{AcceptQueueMax: 4097, TCPExt: limits.TCPExt{ListenOverflows: 30}}), LimitAcceptQueueFull},
		{"timeouts, no overflow, room", LimitAcceptQueueFull, listener(Kernel{AcceptQueueMax: 3}), LimitPacketFilter},
		{"timeouts, no overflow, conntrack refused", LimitAcceptQueueFull, listener(Kernel{Conntrack: &Conntrack{Max: 262144, CountMax: 900, Refused: 180}}), LimitConntrackFull},
		{"timeouts, no overflow, conntrack at max", LimitAcceptQueueFull, listener(Kernel{Conntrack: full}), LimitConntrackFull},
		{"timeouts, overflow and a full table: the queue", LimitAcceptQueueFull, listener(Kernel{AcceptQueueMax: 4097, TCPExt: limits.TCPExt{ListenOverflows: 3}, Conntrack: full}), LimitAcceptQueueFull},
		{"timeouts, counters unread", LimitAcceptQueueFull, &Kernel{ListenBacklog: 4096}, LimitAcceptQueueFull},
		{"timeouts, counters unread, a full table", LimitAcceptQueueFull, &Kernel{ListenBacklog: 4096, Conntrack: full}, LimitConntrackFull},
		{"other verdicts stay", LimitTargetFD, listener(Kernel{}), LimitTargetFD},
	} {
		if got := byKernelEvidence(tc.limit, tc.k); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestByProcessEvidence(t *testing.T) {
	cg := func(c ProcessCgroup) []Process { return []Process{{PID: 9, Cgroup: &c}} }
	for _, tc := range []struct {
		name  string
		limit string
		procs []Process
		want  string
		k     *Kernel
	}{
		{"OOM kill wins over a death", LimitTargetDied, cg(ProcessCgroup{OOMKills: 1}), LimitTargetMemory, nil},
		{"OOM kill wins over resets", LimitTargetClosed, cg(ProcessCgroup{OOMKills: 2}), LimitTargetMemory, nil},
		{"threads refused explain closes", LimitTargetClosed, cg(ProcessCgroup{PidsMax: 20, PidsRefused: 40}), LimitTargetTask, nil},
		{"threads refused, but every attempt served", LimitNone, cg(ProcessCgroup{PidsRefused: 3}), LimitNone, nil},
		{"the client's own limit stays", LimitClientFD, cg(ProcessCgroup{PidsRefused: 3, OOMKills: 1}), LimitClientFD, nil},
		{"nothing refused", LimitTargetClosed, cg(ProcessCgroup{PidsRefused: 0, OOMKills: 0}), LimitTargetClosed, nil},
		{"cgroups unknown", LimitTargetClosed, []Process{{PID: 9}}, LimitTargetClosed, nil},
		{"its user at RLIMIT_NPROC", LimitTargetClosed, []Process{{PID: 9, NProc: &ProcessNProc{UID: 106, Soft: 40, UserTasks: 40, AtLimit: true}}}, LimitTargetTask, nil},
		{"its user with tasks to spare", LimitTargetClosed, []Process{{PID: 9, NProc: &ProcessNProc{UID: 106, Soft: 40, UserTasks: 12}}}, LimitTargetClosed, nil},
		{"the PID namespace out of PIDs", LimitTargetClosed, nil, LimitTargetTask, &Kernel{Tasks: &limits.KernelTasks{ThreadsMax: 9000, Threads: 500, PidMax: 400, Pids: 380}}},
		{"the machine at threads-max", LimitOtherError, nil, LimitTargetTask, &Kernel{Tasks: &limits.KernelTasks{ThreadsMax: 600, Threads: 590, PidMax: 32768, Pids: 590}}},
		{"PIDs to spare", LimitTargetClosed, nil, LimitTargetClosed, &Kernel{Tasks: &limits.KernelTasks{ThreadsMax: 9000, Threads: 500, PidMax: 32768, Pids: 500}}},
		{"out of PIDs, but the queue was full", LimitAcceptQueueFull, nil, LimitAcceptQueueFull, &Kernel{Tasks: &limits.KernelTasks{ThreadsMax: 9000, Threads: 500, PidMax: 400, Pids: 380}}},
		{"out of PIDs, every attempt served", LimitNone, nil, LimitNone, &Kernel{Tasks: &limits.KernelTasks{ThreadsMax: 9000, Threads: 500, PidMax: 400, Pids: 380}}},
	} {
		if got := byProcessEvidence(tc.limit, tc.procs, tc.k); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// A process in a systemd unit gets the unit's setting in the fix.
func TestUnitFix(t *testing.T) {
	for _, tc := range []struct {
		limit string
		p     Process
		want  string
	}{
		{LimitTargetFD, Process{PID: 7, Unit: "nginx.service", AtLimit: true, Readable: true}, "for nginx.service: systemctl edit nginx.service, then [Service] LimitNOFILE="},
		{LimitTargetTask, Process{PID: 7, Unit: "mariadb.service", Cgroup: &ProcessCgroup{PidsRefused: 4}}, "[Service] TasksMax="},
		{LimitTargetMemory, Process{PID: 7, Unit: "app.service", Cgroup: &ProcessCgroup{OOMKills: 1}}, "[Service] MemoryMax="},
		{LimitTargetFD, Process{PID: 7, AtLimit: true}, ""}, // no unit: no unit fix
	} {
		s := Summary{FirstLimit: tc.limit, TargetProcesses: []Process{tc.p}}
		_, _, fix := s.limitDetail()
		if tc.want == "" && strings.Contains(fix, "systemctl") || tc.want != "" && !strings.Contains(fix, tc.want) {
			t.Errorf("%s: fix %q, want %q", tc.limit, fix, tc.want)
		}
	}
}
