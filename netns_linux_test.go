package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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

// inFilteredNetNS runs connlimit in a network namespace of the test's own
// whose input chain holds rule (for the built-in target's port 9000), and
// returns the run's JSON summary.
func inFilteredNetNS(t *testing.T, rule string, args ...string) summaryJSON {
	return inNetNSWithRules(t, `tcp dport 9000 ct state new meter m { ip saddr ct count over 50 } counter `+rule, args...)
}

// inNetNSWithRules runs connlimit in a network namespace of the test's own
// whose input chain holds rules, and returns the run's JSON summary.
func inNetNSWithRules(t *testing.T, rules string, args ...string) summaryJSON {
	t.Helper()
	netnsOrSkip(t)
	for _, bin := range []string{"nft", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("no %s (Debian: nftables, iproute2; .ci/run installs them)", bin)
		}
	}
	js := filepath.Join(t.TempDir(), "s.json")
	script := `set -e
ip link set lo up
nft -f - <<NFT
table inet connlimit_test {
  chain input {
    type filter hook input priority 0;
    ` + rules + `
  }
}
NFT
exec "$CL" run -q --target-port 9000 --json "$JS" "$@"`
	cmd := exec.Command("unshare", append([]string{"--net", "sh", "-c", script, "sh"}, args...)...)
	cmd.Env = append(os.Environ(), "CL="+testExe, "JS="+js)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return readSummary(t, js)
}

// A packet filter in front of a listener with room is named as one: its
// resets are not "nothing listens", its drops not a full accept queue.
func TestPacketFilter(t *testing.T) {
	noLeftovers(t)
	common := []string{"--connections", "200", "--hold", "0s", "--connect-timeout", "500ms", "--greeting-timeout", "300ms"}
	for _, tc := range []struct {
		rule, outcome string
	}{
		{"reject with tcp reset", "refused"},
		{"drop", "connect-timeout"},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			s := inFilteredNetNS(t, tc.rule, common...)
			if s.FirstLimit != "packet-filter" || s.FirstLimitAt != 50 || s.Outcomes[tc.outcome] != 150 || s.Outcomes["served"] != 50 {
				t.Errorf("first limit %s at %d, outcomes %v: want packet-filter at 50, 150 %s", s.FirstLimit, s.FirstLimitAt, s.Outcomes, tc.outcome)
			}
			if !strings.Contains(s.Setting, "packet filter") || !strings.Contains(s.Fix, "nft list ruleset") {
				t.Errorf("setting %q, fix %q", s.Setting, s.Fix)
			}
			// As root the rule whose counter moved is named.
			if want := "the rule that fired: table inet connlimit_test chain input: tcp dport 9000"; !strings.Contains(s.Value, want) || !strings.Contains(s.Value, tc.rule+" (") {
				t.Errorf("value %q: want %q", s.Value, want)
			}
		})
	}
	noProcessLeft(t)
}

// With the connection-tracking table of the namespace full, new SYNs are
// dropped before any listener: conntrack-full, not a full accept queue.
// nf_conntrack_max is global; the count is the namespace's own, so the run
// fills its namespace's table and touches no setting of the host.
func TestConntrackFull(t *testing.T) {
	noLeftovers(t)
	b, err := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_max")
	if err != nil {
		t.Skipf("no connection tracking here: %v", err)
	}
	max, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if max < 1000 || max > 300_000 {
		t.Skipf("nf_conntrack_max %d: filling it takes too many connections for a test", max)
	}
	// Slow enough that no accept queue overflows: the table is the only limit.
	n := max + 8000
	s := inNetNSWithRules(t, "ct state new counter accept", "--connections", strconv.Itoa(n), "--rate", "25000",
		"--hold", "0s", "--connect-timeout", "1s")
	if s.FirstLimit != "conntrack-full" || s.FirstLimitAt < int64(max)-5000 || s.FirstLimitAt > int64(max) || s.Outcomes["connect-timeout"] == 0 {
		t.Errorf("first limit %s at %d, outcomes %v: want conntrack-full near %d", s.FirstLimit, s.FirstLimitAt, s.Outcomes, max)
	}
	if !strings.Contains(s.Setting, "nf_conntrack_max") || !strings.HasPrefix(s.Value, strconv.Itoa(max)) {
		t.Errorf("setting %q = %q", s.Setting, s.Value)
	}
	noProcessLeft(t)
}
