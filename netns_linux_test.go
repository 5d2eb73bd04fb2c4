package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

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

func TestNetNSFlagsNeedNetNS(t *testing.T) {
	noLeftovers(t)
	for _, args := range [][]string{{"--port-range", "40000-40099"}, {"--somaxconn", "8"}} {
		_, stderr, code := cli(t, append([]string{"run"}, args...)...)
		if code != 2 || !strings.Contains(stderr, args[0]+": valid only with --netns") {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
	}
}
