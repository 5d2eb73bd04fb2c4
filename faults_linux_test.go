package main

import (
	"bytes"
	"errors"
	"io"
	"net"
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

// startCLI starts connlimit as a child and waits until the Go runtime has
// installed its signal handlers. That is not yet signal.Notify: the phases
// below wait for later signs before they signal.
func startCLI(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(testExe, args...)
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	status := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status"
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b, _ := os.ReadFile(status)
		for _, line := range strings.Split(string(b), "\n") {
			if mask, ok := strings.CutPrefix(line, "SigCgt:\t"); ok {
				if v, err := strconv.ParseUint(mask, 16, 64); err == nil && v&(1<<(syscall.SIGINT-1)) != 0 {
					return cmd, &stderr
				}
			}
		}
	}
	t.Fatal("connlimit never installed its SIGINT handler")
	return nil, nil
}

// fdCount is how many descriptors pid holds (-1 once it is gone).
func fdCount(pid int) int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// signalTaken waits until sig is no longer pending for the process pid: a
// thread has taken it, so the kernel keeps the next one apart (a Go
// process may still fold it in until os/signal has read the first).
func signalTaken(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(string(b), "\nShdPnd:\t")
		mask, err := strconv.ParseUint(strings.TrimSpace(strings.SplitN(rest, "\n", 2)[0]), 16, 64)
		if err != nil {
			t.Fatalf("ShdPnd in /proc/%d/status: %v", pid, err)
		}
		if mask&(1<<(sig-1)) == 0 {
			return
		}
	}
	t.Fatalf("%v still pending for pid %d", sig, pid)
}

// waitExit waits for cmd and returns its status as a shell shows it.
func waitExit(t *testing.T, cmd *exec.Cmd, within time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return 128 + int(ws.Signal())
			}
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(within):
		cmd.Process.Kill()
		<-done
		t.Fatalf("connlimit did not stop within %v of the signal", within)
		return -1
	}
}

// A signal at any phase stops the run within a second, writes every report
// with "interrupted": true and every attempt made, reaps the target, and
// exits 128+signal.
func TestInterruptAtEveryPhase(t *testing.T) {
	noLeftovers(t)
	tests := []struct {
		phase string
		args  []string
		sig   syscall.Signal
		// when is called once the child catches signals; it returns when the phase is reached.
		when func(t *testing.T, pid int)
		all  bool // every attempt was made
	}{
		// Its first child (the shell that reads the inherited limit, or the
		// target) comes after signal.Notify, before any connection.
		{"starting", []string{"--connections", "500"}, syscall.SIGINT, func(t *testing.T, pid int) {
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				if len(childrenOf(pid)) > 0 {
					return
				}
			}
			t.Fatal("connlimit started no child")
		}, false},
		{"ramping", []string{"--connections", "2000", "--rate", "500"}, syscall.SIGTERM,
			func(*testing.T, int) { time.Sleep(time.Second) }, false},
		{"ramping, several generator processes", []string{"--connections", "3000", "--rate", "1500", "--procs", "3"}, syscall.SIGINT,
			func(*testing.T, int) { time.Sleep(time.Second) }, false},
		// One worker connects at a time: at the signal one is ramping and
		// the last still waits for its turn, and makes no attempt.
		{"ramping, generator processes taking turns", []string{"--connections", "3000", "--rate", "1500", "--procs", "3", "--ramp-procs", "1"}, syscall.SIGINT,
			func(*testing.T, int) { time.Sleep(time.Second) }, false},
		{"holding", []string{"--connections", "300", "--target-nofile", "64", "--hold", "1m"}, syscall.SIGINT,
			func(*testing.T, int) { time.Sleep(1500 * time.Millisecond) }, true},
		// A closed terminal or a dropped ssh session: as SIGTERM, exit 129.
		{"holding, hung up", []string{"--connections", "300", "--target-nofile", "64", "--hold", "1m"}, syscall.SIGHUP,
			func(*testing.T, int) { time.Sleep(1500 * time.Millisecond) }, true},
		{"tearing down", []string{"--connections", "12000", "--target-nofile", "19000", "--hold", "0s", "--greeting-timeout", "3s"}, syscall.SIGINT,
			func(t *testing.T, pid int) {
				// Teardown starts when the generator's descriptors fall from their peak.
				peak := 0
				for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
					n := fdCount(pid)
					peak = max(peak, n)
					if peak > 10000 && n < peak/2 {
						return
					}
				}
				t.Fatal("never saw the teardown")
			}, true},
	}
	for _, tc := range tests {
		t.Run(tc.phase, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{"json": filepath.Join(dir, "s.json"), "csv": filepath.Join(dir, "c.csv"), "timeline": filepath.Join(dir, "t.csv")}
			args := append([]string{"run", "-q", "--json", files["json"], "--csv", files["csv"], "--timeline", files["timeline"]}, tc.args...)
			cmd, stderr := startCLI(t, args...)
			tc.when(t, cmd.Process.Pid)
			cmd.Process.Signal(tc.sig)
			if code := waitExit(t, cmd, 3*time.Second); code != 128+int(tc.sig) {
				t.Fatalf("exit %d, want %d; stderr %q", code, 128+int(tc.sig), stderr.String())
			}
			if _, err := os.Stat(files["json"]); err != nil {
				t.Fatalf("no JSON report: %v; stderr %q", err, stderr.String())
			}
			s := readSummary(t, files["json"])
			if !s.Interrupted || sum(s.Outcomes) != s.Attempted {
				t.Errorf("interrupted %v, attempted %d, outcomes %v", s.Interrupted, s.Attempted, s.Outcomes)
			}
			n, _ := strconv.Atoi(tc.args[1])
			if tc.all && s.Attempted != n || !tc.all && s.Attempted >= n {
				t.Errorf("attempted %d of %d", s.Attempted, n)
			}
			if rows := readCSV(t, files["csv"]); len(rows) != s.Attempted+1 {
				t.Errorf("CSV has %d rows for %d attempts", len(rows)-1, s.Attempted)
			}
			if rows := readCSV(t, files["timeline"]); len(rows) < 1 {
				t.Error("no timeline")
			}
			noProcessLeft(t)
		})
	}
}

// A second Ctrl-C exits at once, removes the report's temporary files and
// says the report was not written; the target still dies with the generator.
func TestSecondInterrupt(t *testing.T) {
	noLeftovers(t)
	dir := t.TempDir()
	cmd, stderr := startCLI(t, "run", "-q", "--connections", "12000", "--target-nofile", "19000", "--hold", "1m",
		"--json", filepath.Join(dir, "s.json"), "--csv", filepath.Join(dir, "c.csv"), "--timeline", filepath.Join(dir, "t.csv"))
	for deadline := time.Now().Add(20 * time.Second); fdCount(cmd.Process.Pid) < 12000; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the run never held its connections")
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 3 {
		t.Fatalf("before the signal the directory holds %d files, want 3 temporary ones", len(ents))
	}
	cmd.Process.Signal(syscall.SIGINT)
	// Two SIGINTs are one until the first is taken, by the kernel's pending
	// set and then by the Go runtime's until os/signal has read it: wait
	// until the run acts on it (its connections start to close).
	signalTaken(t, cmd.Process.Pid, syscall.SIGINT)
	for deadline := time.Now().Add(5 * time.Second); fdCount(cmd.Process.Pid) > 11900; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the run never acted on the first SIGINT")
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	if code := waitExit(t, cmd, 2*time.Second); code != 130 {
		t.Errorf("exit %d, want 130", code)
	}
	if !strings.Contains(stderr.String(), "the report was not written") {
		t.Errorf("stderr %q does not say the report was not written", stderr.String())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
	noProcessLeft(t)
}

// The generator killed with -9 cannot clean up: its children must die with
// it (Pdeathsig), the namespaced one of --netns and its target too.
func TestGeneratorKilled(t *testing.T) {
	noLeftovers(t)
	for _, tc := range []struct {
		extra []string
		want  int // processes of ours once running
	}{
		{nil, 2},                      // generator + target
		{[]string{"--netns"}, 3},      // + the namespaced run
		{[]string{"--procs", "2"}, 4}, // + two generator workers
	} {
		extra, want := tc.extra, tc.want
		t.Run(strings.Join(append([]string{"run"}, extra...), " "), func(t *testing.T) {
			if slices.Contains(extra, "--netns") {
				netnsOrSkip(t)
			}
			cmd, _ := startCLI(t, append([]string{"run", "-q", "--connections", "100", "--hold", "1m"}, extra...)...)
			for deadline := time.Now().Add(10 * time.Second); len(ourProcesses()) < want; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("processes %v, want %d", ourProcesses(), want)
				}
			}
			cmd.Process.Signal(syscall.SIGKILL)
			if code := waitExit(t, cmd, 2*time.Second); code != 137 {
				t.Errorf("exit %d, want 137", code)
			}
			noProcessLeft(t)
		})
	}
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			if c, err := strconv.Atoi(e.Name()); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// Environment faults: one clear line and exit 3, with no report file.
func TestEnvironmentFaults(t *testing.T) {
	noLeftovers(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"target port in use", []string{"--target-port", busy}, []string{"address already in use", "choose another"}},
		{"target address refuses", []string{"--target", "127.0.0.1:" + strconv.Itoa(freePort(t))}, []string{"nothing listens there"}},
		{"hard limit too low", []string{"--procs", "1", "--connections", strconv.FormatUint(r.Max, 10)}, []string{"hard limit", "ulimit -Hn", "--procs"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, stderr, code := cli(t, append([]string{"run", "-q", "--json", filepath.Join(dir, "s.json")}, tc.args...)...)
			if code != 3 || strings.Count(stderr, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q: want 3 and one line", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("files left: %v", ents)
			}
		})
	}
}

// The safety pre-flight refuses a run that would not fit the memory the
// machine has, with the figures and the flag that overrides it.
func TestMemoryPreflight(t *testing.T) {
	noLeftovers(t)
	env := runEnv{procRoot: "limits/testdata/proc"} // MemTotal 2 GiB, MemAvailable 1.5 GiB
	var stdout, stderr bytes.Buffer
	err := runRun(t.Context(), []string{"--connections", "100000", "-q"}, &stdout, &stderr, env)
	if exitCode(err) != 3 || !strings.Contains(err.Error(), "MemAvailable is 1.5 GiB") || !strings.Contains(err.Error(), "--skip-memory-check") {
		t.Fatalf("run = %v (exit %d): want exit 3 with the figures and the override", err, exitCode(err))
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout %q", stdout.String())
	}
}

// A signal that comes while the reports are being written still marks the
// run interrupted (exit 130), and the reports are complete: here the CSV
// goes to a FIFO that is read only after the signal.
func TestInterruptWhileWriting(t *testing.T) {
	noLeftovers(t)
	dir := t.TempDir()
	fifo, js := filepath.Join(dir, "c.fifo"), filepath.Join(dir, "s.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(testExe, "run", "-q", "--probe", "connect", "--hold", "0s", "--connections", "3000", "--csv", fifo, "--json", js)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The summary comes first; then the CSV, 3000 rows, fills the FIFO and waits.
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for !strings.Contains(out.String(), "generator: pid") {
		n, err := stdout.Read(buf)
		if err != nil {
			t.Fatalf("stdout ended before the summary: %v\n%s", err, out.String())
		}
		out.Write(buf[:n])
	}
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	time.Sleep(100 * time.Millisecond)
	syscall.SetNonblock(int(r.Fd()), false)
	rows, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd, 5*time.Second); code != 130 {
		t.Errorf("exit %d, want 130; stderr %q", code, stderr.String())
	}
	if n := bytes.Count(rows, []byte("\n")); n != 3001 {
		t.Errorf("the CSV through the FIFO has %d lines, want 3001", n)
	}
	if s := readSummary(t, js); s.Attempted != 3000 {
		t.Errorf("JSON attempted %d", s.Attempted)
	}
	noProcessLeft(t)
}
