package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Several generator processes and several target processes make one run:
// one set of counts, one CSV in time order, a breakdown per process.
// Workers pair with targets when the counts divide (2×2, 2×4) and spread
// over all of them otherwise (3×2); either way the CSV names each
// attempt's own target and every target gets its share.
func TestMultiProcess(t *testing.T) {
	for _, tc := range []struct{ procs, targets int }{{3, 2}, {2, 2}, {2, 4}} {
		t.Run(fmt.Sprintf("%dx%d", tc.procs, tc.targets), func(t *testing.T) {
			noLeftovers(t)
			csvPath := filepath.Join(t.TempDir(), "c.csv")
			s := runJSON(t, "--procs", strconv.Itoa(tc.procs), "--target-procs", strconv.Itoa(tc.targets), "--target-nofile", "2000",
				"--connections", "3000", "--hold", "0s", "--csv", csvPath)
			if s.Outcomes["served"] != 3000 || s.FirstLimit != "none" || len(s.Generators) != tc.procs || len(s.Targets) != tc.targets {
				t.Fatalf("outcomes %v, first limit %s, %d generators, %d targets", s.Outcomes, s.FirstLimit, len(s.Generators), len(s.Targets))
			}
			n, accepted := 0, int64(0)
			for _, g := range s.Generators {
				n += g.Connections
				if g.Served != int64(g.Connections) {
					t.Errorf("generator %+v", g)
				}
			}
			share := int64(3000 / tc.targets)
			for _, tg := range s.Targets {
				accepted += tg.Accepted
				if tg.Accepted < share {
					t.Errorf("target %+v got less than its share %d", tg, share)
				}
			}
			if n != 3000 || accepted != 3000 {
				t.Errorf("generators hold %d, targets accepted %d, want 3000 each", n, accepted)
			}
			rows := readCSV(t, csvPath)
			ports := map[string]int{}
			for i, r := range rows[1:] {
				if r[0] != strconv.Itoa(i+1) {
					t.Fatalf("row %d has seq %s: want the merged attempts numbered in order", i+1, r[0])
				}
				ports[r[5]]++
			}
			if len(rows) != 3001 || len(ports) != tc.targets {
				t.Errorf("%d rows, remote ports %v", len(rows)-1, ports)
			}
			for port, c := range ports {
				if int64(c) != share {
					t.Errorf("CSV: %d rows name port %s, want %d (each target's accepted count)", c, port, share)
				}
			}
		})
	}
}

// --ramp-procs 1: the generator processes connect one after the other,
// each to its own target, so in time order the CSV's remote ports come in
// one block per process; with all of them at once they interleave. The
// rate (shared by those connecting at once) makes each ramp last long
// enough that the all-at-once ones overlap however slowly they start.
func TestRampProcs(t *testing.T) {
	for _, tc := range []struct {
		ramp   string
		json   int // generator.ramp_procs
		blocks func(int) bool
	}{{"1", 1, func(n int) bool { return n == 4 }}, {"all", 0, func(n int) bool { return n > 4 }}} {
		t.Run(tc.ramp, func(t *testing.T) {
			noLeftovers(t)
			csvPath := filepath.Join(t.TempDir(), "c.csv")
			s := runJSON(t, "--procs", "4", "--target-procs", "4", "--ramp-procs", tc.ramp, "--target-nofile", "2000",
				"--connections", "4000", "--rate", "20000", "--hold", "0s", "--csv", csvPath)
			if s.Outcomes["served"] != 4000 || len(s.Generators) != 4 || s.Generator.RampProcs != tc.json || s.Generator.SourceAddrs != 0 {
				t.Fatalf("outcomes %v, %d generators, generator %+v", s.Outcomes, len(s.Generators), s.Generator)
			}
			blocks, last := 0, ""
			for _, r := range readCSV(t, csvPath)[1:] {
				if r[5] != last {
					blocks, last = blocks+1, r[5]
				}
			}
			if !tc.blocks(blocks) {
				t.Errorf("--ramp-procs %s: %d blocks of one remote port in time order", tc.ramp, blocks)
			}
		})
	}
}

// Each target process meets its own limit; the verdict names the first.
func TestMultiProcessTargetsRunOut(t *testing.T) {
	noLeftovers(t)
	s := runJSON(t, "--procs", "2", "--target-procs", "2", "--target-nofile", "64", "--connections", "400",
		"--greeting-timeout", "300ms", "--hold", "0s")
	if s.FirstLimit != "target-fd-limit" || len(s.Targets) != 2 {
		t.Fatalf("first limit %s, %d targets", s.FirstLimit, len(s.Targets))
	}
	served, fewest := 0, int64(400)
	for _, tg := range s.Targets {
		if tg.FirstEMFILE == nil || tg.FirstEMFILE.SlotsUsed != 64 {
			t.Errorf("target %+v: want its own first EMFILE at 64 slots", tg)
			continue
		}
		// At the limit: later, teardown's resets free slots and the target
		// drains its queue, which its total accepted count includes.
		served += int(tg.FirstEMFILE.Accepted)
		fewest = min(fewest, tg.FirstEMFILE.Accepted)
	}
	if s.Outcomes["served"] != served || s.Outcomes["queued"] != 400-served {
		t.Errorf("outcomes %v, targets accepted %d", s.Outcomes, served)
	}
	// The first attempt that failed went to a full target, after at least
	// that target's connections; the other may still have served some after.
	if s.FirstLimitAt < fewest-2 || s.FirstLimitAt > int64(served) {
		t.Errorf("first limit at %d: want between the %d the first full target took and the %d served by both",
			s.FirstLimitAt, fewest, served)
	}
	// The kernel's view adds up both listeners' accept queues.
	if k := s.Kernel; k.AcceptQueueEnd != int64(s.Outcomes["queued"]) {
		t.Errorf("kernel view %+v: want both accept queues, %d in all", k, s.Outcomes["queued"])
	}
}

// Once a run takes several processes the default probe is accept: the
// targets write nothing (no CSV row has a target_seq) and the kernel's
// accept queues decide served; one process keeps the greeting, and a probe
// asked for is kept.
func TestDefaultProbeByScale(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		probe string
	}{
		{"one process", nil, "greeting"},
		{"two generators", []string{"--procs", "2", "--target-procs", "1"}, "accept"},
		{"two targets", []string{"--procs", "1", "--target-procs", "2", "--target-nofile", "1024"}, "accept"},
		{"asked for", []string{"--procs", "2", "--target-procs", "2", "--target-nofile", "1024", "--probe", "greeting"}, "greeting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeftovers(t)
			csvPath := filepath.Join(t.TempDir(), "c.csv")
			s := runJSON(t, append(tc.args, "--connections", "200", "--hold", "0s", "--csv", csvPath)...)
			if s.Probe != tc.probe || s.Outcomes["served"] != 200 {
				t.Fatalf("probe %q, outcomes %v: want %s and 200 served", s.Probe, s.Outcomes, tc.probe)
			}
			greeted := 0
			for _, r := range readCSV(t, csvPath)[1:] {
				if r[10] != "" {
					greeted++
				}
			}
			if want := map[bool]int{true: 200, false: 0}[tc.probe == "greeting"]; greeted != want {
				t.Errorf("%d rows carry a target_seq, want %d", greeted, want)
			}
		})
	}
}

// connlimitBinary builds connlimit without the race detector: the 100,000
// connection run would exceed its limit of 8128 goroutines per process in
// the targets, which hold a goroutine per connection.
func connlimitBinary(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "connlimit")
	cmd := exec.Command("go", "build", "-o", exe, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

// 100,000 connections with the defaults: auto generator and target processes
// (the hard limit here is 20,000), every attempt counted, nothing left over.
// A test of correctness, not of time.
func TestHundredThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	noLeftovers(t)
	exe := connlimitBinary(t)
	js := filepath.Join(t.TempDir(), "s.json")
	cmd := exec.Command(exe, "run", "-q", "--connections", "100000", "--hold", "1s", "--connect-timeout", "10s",
		"--greeting-timeout", "10s", "--json", js)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	s := readSummary(t, js)
	if s.Attempted != 100000 || sum(s.Outcomes) != 100000 || s.Outcomes["served"] != 100000 || s.FirstLimit != "none" {
		t.Errorf("attempted %d, outcomes %v, first limit %s", s.Attempted, s.Outcomes, s.FirstLimit)
	}
	if len(s.Generators) < 5 || len(s.Targets) < 5 {
		t.Errorf("%d generators, %d targets: want the hard limit 20000 to require at least 5 of each", len(s.Generators), len(s.Targets))
	}
	if s.Generator.SourceAddrs < 2 {
		t.Errorf("generator.source_addrs %d: want the auto source addresses (about 17,000 connections per target port)", s.Generator.SourceAddrs)
	}
	noProcessLeft(t)
}

// Worker processes use the probe the run was given (they once fell back to
// the greeting probe for http).
func TestMultiProcessHTTPProbe(t *testing.T) {
	noLeftovers(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	s := runJSON(t, "--target", srv.Listener.Addr().String(), "--probe", "http", "--procs", "2", "--connections", "20", "--hold", "0s")
	if s.Outcomes["served"] != 20 || len(s.Generators) != 2 {
		t.Errorf("outcomes %v with %d generators: want 20 served by 2", s.Outcomes, len(s.Generators))
	}
}

// Targets and generator workers each run on one P (see target.Start and
// startWorker): their work is one busy goroutine.
func TestChildrenRunOnOneP(t *testing.T) {
	noLeftovers(t)
	done := make(chan error, 1)
	var stdout, stderr bytes.Buffer
	go func() {
		done <- run(context.Background(), []string{"run", "--procs", "2", "--target-procs", "2", "--connections", "200",
			"--hold", "3s", "-q"}, &stdout, &stderr)
	}()
	var pids []int
	for deadline := time.Now().Add(5 * time.Second); len(pids) < 4 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		pids = ourProcesses()
	}
	roles := map[string]int{}
	for _, pid := range pids {
		cmdline, err1 := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		env, err2 := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		role := strings.Split(string(cmdline), "\x00")[1]
		roles[role]++
		if !slices.Contains(strings.Split(string(env), "\x00"), "GOMAXPROCS=1") {
			t.Errorf("%s child %d runs without GOMAXPROCS=1", role, pid)
		}
	}
	if roles["target"] != 2 || roles["worker"] != 2 {
		t.Errorf("children %v, want 2 targets and 2 workers", roles)
	}
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	noProcessLeft(t)
}

// With --probe connect the built-in targets are silent (--silent), and what
// they accepted accounts for every connection the clients hold.
func TestConnectProbeSilentTargets(t *testing.T) {
	noLeftovers(t)
	done := make(chan error, 1)
	js := filepath.Join(t.TempDir(), "s.json")
	var stdout, stderr bytes.Buffer
	go func() {
		done <- run(context.Background(), []string{"run", "--probe", "connect", "--procs", "2", "--target-procs", "2",
			"--connections", "600", "--hold", "2s", "-q", "--json", js}, &stdout, &stderr)
	}()
	var silent int
	for deadline := time.Now().Add(5 * time.Second); silent < 2 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		silent = 0
		for _, pid := range ourProcesses() {
			if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil &&
				slices.Contains(strings.Split(string(cmdline), "\x00"), "--silent") {
				silent++
			}
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if silent != 2 {
		t.Errorf("%d target processes ran with --silent, want 2", silent)
	}
	s := readSummary(t, js)
	var accepted int64
	for _, tg := range s.Targets {
		accepted += tg.Accepted
	}
	if s.Outcomes["served"] != 600 || accepted != 600 {
		t.Errorf("served %d, targets accepted %d; want 600 each", s.Outcomes["served"], accepted)
	}
	noProcessLeft(t)
}

// Workers and targets keep their counters in blocks the parent maps; no
// child sends them. The timeline therefore shows the ramp as it happens —
// counts between none and all — and its last row the final counts; a child
// that kept its counters to itself leaves its columns at zero.
func TestTimelineReadsChildrenCounters(t *testing.T) {
	noLeftovers(t)
	tl := filepath.Join(t.TempDir(), "t.csv")
	s := runJSON(t, "--procs", "2", "--target-procs", "2", "--rate", "4000", "--connections", "2000", "--hold", "200ms",
		"--interval", "50ms", "--timeline", tl)
	if s.Outcomes["served"] != 2000 {
		t.Fatalf("outcomes %v: want 2000 served", s.Outcomes)
	}
	rows := readCSV(t, tl)
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	num := func(r []string, name string) int {
		v, err := strconv.Atoi(r[col[name]])
		if err != nil {
			t.Fatalf("column %s: %v", name, err)
		}
		return v
	}
	var midRamp, prevAttempted, maxFDs int
	for _, r := range rows[1:] {
		maxFDs = max(maxFDs, num(r, "target_fds"))
		a, acc := num(r, "attempted"), num(r, "target_accepted")
		if a < prevAttempted {
			t.Errorf("attempted went back from %d to %d", prevAttempted, a)
		}
		prevAttempted = a
		if a > 0 && a < 2000 && acc > 0 && acc < 2000 {
			midRamp++
		}
	}
	last := rows[len(rows)-1]
	if num(last, "attempted") != 2000 || num(last, "served") != 2000 || num(last, "target_accepted") != 2000 || maxFDs < 2000 {
		t.Errorf("last timeline row %v, at most %d target descriptors: want 2000 attempted, served and accepted, and the targets' descriptors counted", last, maxFDs)
	}
	if midRamp < 3 {
		t.Errorf("%d timeline rows during the 0.5 s ramp show it under way (generators and targets both between 0 and 2000); want at least 3", midRamp)
	}
}

// --probe accept asks the kernel which connections the server accepted (a
// server-side socket still in the accept queue has no inode yet). Against
// targets that run out of descriptors it counts as served exactly what they
// accepted and the rest as queued — as the greeting does, with silent
// targets — in one process or several; against a listener that never
// accepts, every connection is queued, where --probe connect calls them all
// served.
func TestAcceptProbe(t *testing.T) {
	noLeftovers(t)
	for _, tc := range []struct {
		name string
		args []string
		n    int
	}{
		{"one process", []string{"--target-nofile", "64", "--connections", "300"}, 300},
		{"2x2", []string{"--procs", "2", "--target-procs", "2", "--target-nofile", "64", "--connections", "400"}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			csvPath := filepath.Join(t.TempDir(), "c.csv")
			s := runJSON(t, append(tc.args, "--probe", "accept", "--hold", "0s", "--csv", csvPath)...)
			// What each target had accepted when it ran out: in teardown the
			// clients' resets free slots and it accepts more.
			var accepted int64
			if f := s.Target.FirstEMFILE; len(s.Targets) == 0 && f != nil {
				accepted = f.Accepted
			}
			for _, tg := range s.Targets {
				if tg.FirstEMFILE != nil {
					accepted += tg.FirstEMFILE.Accepted
				}
			}
			if s.FirstLimit != "target-fd-limit" || accepted == 0 {
				t.Fatalf("first limit %s, %d accepted at the limit: the test needs the targets to run out", s.FirstLimit, accepted)
			}
			if int64(s.Outcomes["served"]) != accepted || s.Outcomes["queued"] != tc.n-int(accepted) {
				t.Errorf("outcomes %v, targets accepted %d: want served = accepted and the rest queued", s.Outcomes, accepted)
			}
			var genServed int64
			for _, g := range s.Generators {
				genServed += g.Served
			}
			if len(s.Generators) > 0 && genServed != accepted {
				t.Errorf("generators' breakdown serves %d, want %d", genServed, accepted)
			}
			rows := readCSV(t, csvPath)
			queued := 0
			for _, r := range rows[1:] {
				if r[6] == "queued" {
					queued++
				}
			}
			if queued != tc.n-int(accepted) {
				t.Errorf("CSV has %d queued rows, want %d", queued, tc.n-int(accepted))
			}
		})
	}
	t.Run("target that stops listening", func(t *testing.T) {
		// At EMFILE it closes its listener, which resets its queue; a client
		// whose handshake it was finishing may never hear of it. With a
		// listener gone, only what the server accepted counts as served.
		s := runJSON(t, "--on-emfile", "stop", "--target-nofile", "64", "--connections", "300", "--probe", "accept", "--hold", "0s")
		if f := s.Target.FirstEMFILE; f == nil || int64(s.Outcomes["served"]) != f.Accepted || s.Target.Accepted != f.Accepted {
			t.Errorf("outcomes %v, first EMFILE %+v, accepted in all %d: want served = accepted", s.Outcomes, f, s.Target.Accepted)
		}
	})
	t.Run("listener that never accepts", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		for probe, want := range map[string]string{"accept": "queued", "connect": "served"} {
			s := runJSON(t, "--target", ln.Addr().String(), "--probe", probe, "--connections", "50", "--hold", "0s", "--greeting-timeout", "300ms")
			if s.Outcomes[want] != 50 {
				t.Errorf("--probe %s: outcomes %v, want 50 %s", probe, s.Outcomes, want)
			}
		}
		// Served, as connect counts it, but the summary says the server
		// never took them, and which probe tells.
		for probe, warned := range map[string]bool{"connect": true, "accept": false} {
			out, errOut, code := cli(t, "run", "-q", "--target", ln.Addr().String(), "--probe", probe, "--connections", "50", "--hold", "0s", "--greeting-timeout", "300ms")
			if code != 0 || strings.Contains(out, "50 of the served connections were still in the target's accept queue when the hold ended") != warned || strings.Contains(out, "--probe accept asks the kernel") != warned {
				t.Errorf("--probe %s: exit %d, stderr %q; want the queued-as-served warning: %v\n%s", probe, code, errOut, warned, out)
			}
		}
	})
}
