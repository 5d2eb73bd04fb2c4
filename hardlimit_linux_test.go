package main

import (
	"bytes"
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

	"github.com/connlimit/connlimit/engine"
	"github.com/connlimit/connlimit/internal/lowlimit"
	"github.com/connlimit/connlimit/target"
	"golang.org/x/sys/unix"
)

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

// The start-up check and the built-in target agree on the least limit.
func TestLowLimitMatchesTarget(t *testing.T) {
	if lowlimit.MinNoFile != target.MinNoFile {
		t.Errorf("lowlimit.MinNoFile %d, target.MinNoFile %d: want one figure", lowlimit.MinNoFile, target.MinNoFile)
	}
}
