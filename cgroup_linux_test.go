package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// asHog makes the test binary a server that accepts and holds every
// connection, listening on the address the variable holds, and spends
// hogBytes on each (4 MiB unless set).
const (
	asHog    = "CONNLIMIT_TEST_AS_HOG"
	hogBytes = "CONNLIMIT_TEST_HOG_BYTES"
)

func memoryHog(addr string) {
	size := 4 << 20
	if v, err := strconv.Atoi(os.Getenv(hogBytes)); err == nil {
		size = v
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var held [][]byte
	var conns []net.Conn
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintf(os.Stderr, "held %d connections, %d buffers\n", len(conns), len(held))
			return
		}
		// Mapped, not from the Go heap: the race detector shadows the heap,
		// which would charge the cgroup twice as much under -race.
		var b []byte
		if size > 0 {
			b, err = syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1 // touched: resident, charged to the cgroup
		}
		held, conns = append(held, b), append(conns, c)
		fmt.Fprintf(os.Stderr, "held %d\n", len(conns))
	}
}

// startHog runs the test binary as a hog on addr spending size bytes a
// connection, calls placed with its pid before it listens (to put it in a
// cgroup), and waits until it listens. done is closed once it exits.
func startHog(t *testing.T, addr string, size int, placed func(pid int)) (*exec.Cmd, chan struct{}) {
	t.Helper()
	cmd := exec.Command(testExe)
	cmd.Env = append(os.Environ(), asHog+"="+addr, hogBytes+"="+strconv.Itoa(size))
	var out bytes.Buffer
	cmd.Stderr = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	if placed != nil {
		placed(cmd.Process.Pid)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return cmd, done
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hog never listened: %s", out.String())
		}
	}
}

// newCgroup makes a v1 cgroup of the test's own under controller, writes
// its settings, and removes it when the test ends (after its processes:
// cleanups run last-in first-out, so create it before starting them).
func newCgroup(t *testing.T, controller string, settings map[string]string) string {
	t.Helper()
	root := filepath.Join("/sys/fs/cgroup", controller)
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a cgroup")
	}
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		t.Skipf("no cgroup v1 %s hierarchy here: %v", controller, err)
	}
	dir := filepath.Join(root, fmt.Sprintf("connlimit-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot make a %s cgroup: %v", controller, err)
	}
	t.Cleanup(func() {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if err := os.Remove(dir); err == nil || time.Now().After(deadline) {
				return
			}
		}
	})
	for k, v := range settings {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644); err != nil {
			t.Fatalf("%s = %s: %v", k, v, err)
		}
	}
	return dir
}

func joinCgroup(t *testing.T, dir string, pid int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Fatalf("move pid %d into %s: %v", pid, dir, err)
	}
}

// A server the OOM killer kills in its memory cgroup is target-memory-limit,
// with the limit and the kill counted, not a target that closed or died.
func TestTargetMemoryLimit(t *testing.T) {
	noLeftovers(t)
	cg := newCgroup(t, "memory", map[string]string{"memory.limit_in_bytes": strconv.Itoa(48 << 20)})
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	hog, done := startHog(t, addr, 4<<20, func(pid int) { joinCgroup(t, cg, pid) })
	js := filepath.Join(t.TempDir(), "s.json")
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"run", "-q", "--json", js, "--target", addr, "--connections", "20", "--rate", "10", "--hold", "500ms"}, &stdout, &stderr)
	if code := exitCode(err); code != 0 {
		t.Fatalf("run: %v (exit %d)\n%s", err, code, stderr.String())
	}
	s := readSummary(t, js)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the hog is still alive: no OOM kill")
	}
	// The count is the connections it held when it was killed, not the
	// first that failed: those it had its 4 MiB for (less the one that
	// startHog dialled), the one it was killed touching, and one more that
	// may wait in its accept queue while it stalls in the cgroup's reclaim
	// (a connection every 100 ms keeps that queue short). How many fit
	// depends on what else the cgroup is charged for (the binary's pages
	// read after the move), so it is read from the hog itself.
	lines := strings.Split(strings.TrimSpace(hog.Stderr.(*bytes.Buffer).String()), "\n")
	var held int
	for _, l := range lines {
		fmt.Sscanf(l, "held %d", &held)
	}
	if s.FirstLimit != "target-memory-limit" || s.FirstLimitAt < 1 || int(s.FirstLimitAt) != s.Outcomes["closed"] ||
		s.FirstLimitAt < int64(held-1) || s.FirstLimitAt > int64(held+2) {
		t.Errorf("first limit %s at %d, outcomes %v, the hog held %d (one of them not ours): want target-memory-limit at the connections it held",
			s.FirstLimit, s.FirstLimitAt, s.Outcomes, held)
	}
	if !strings.Contains(s.Setting, "memory cgroup") || !strings.Contains(s.Value, "48 MiB") || !strings.Contains(s.Value, "OOM kills") {
		t.Errorf("setting %q = %q", s.Setting, s.Value)
	}
}

// A thread-per-connection server (MariaDB) whose cgroup is at pids.max
// fails the connections it cannot start a thread for: target-task-limit,
// not an application connection cap.
func TestTargetTaskLimit(t *testing.T) {
	noLeftovers(t)
	bin := needServer(t, "mariadbd", "mariadb-server")
	cg := newCgroup(t, "pids", nil)
	dir, port := startMariaDB(t, bin)
	pid := mariadbPID(t, dir)
	threads, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	// Room for five more threads: one per connection.
	if err := os.WriteFile(filepath.Join(cg, "pids.max"), []byte(strconv.Itoa(len(threads)+5)), 0o644); err != nil {
		t.Fatal(err)
	}
	joinCgroup(t, cg, pid)
	t.Cleanup(func() { joinCgroup(t, filepath.Join(cg, ".."), pid) })
	s := runJSON(t, "--target", "127.0.0.1:"+strconv.Itoa(port), "--probe", "mysql", "--connections", "20", "--rate", "100", "--hold", "500ms")
	if s.FirstLimit != "target-task-limit" || s.FirstLimitAt < 3 || s.FirstLimitAt > 6 {
		t.Errorf("first limit %s at %d, outcomes %v, reasons %+v: want target-task-limit at about 5", s.FirstLimit, s.FirstLimitAt, s.Outcomes, s.Reasons)
	}
	if !strings.Contains(s.Setting, "pids.max") || !strings.Contains(s.Value, "refused") {
		t.Errorf("setting %q = %q", s.Setting, s.Value)
	}
}
