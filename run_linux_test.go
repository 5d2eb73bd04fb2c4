package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

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
