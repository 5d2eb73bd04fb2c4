package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

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
