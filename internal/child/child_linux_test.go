package child

import (
	"io"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/connlimit/connlimit/internal/shm"
)

// A child writes on its pipes, holds its block, runs in a process group of
// its own, and its end says how it ended: an exit status, or the signal.
func TestStart(t *testing.T) {
	c, err := Start(Spec{Exe: "/bin/sh", Args: []string{"-c", `echo one >&3; readlink /proc/self/fd/5 >&3; ps -o pgid= $$ >&4; exit 7`},
		Pipes: 2, Block: 4096, OneP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer shm.Unmap(c.Mem)
	three, _ := io.ReadAll(c.Pipes[0])
	four, _ := io.ReadAll(c.Pipes[1])
	for _, p := range c.Pipes {
		p.Close()
	}
	if e := c.End(); e.Status != 7 || e.Signal != "" || e.State != "exit status 7" {
		t.Errorf("end %+v, want status 7", e)
	}
	if !strings.HasPrefix(string(three), "one\n") || !strings.Contains(string(three), "memfd:") {
		t.Errorf("fd 3 %q: want its line and the block on fd 5", three)
	}
	if pgid := strings.TrimSpace(string(four)); pgid == "" || pgid == strconv.Itoa(syscall.Getpgrp()) {
		t.Errorf("the child's process group %q, ours %d: want its own", pgid, syscall.Getpgrp())
	}
	if len(c.Mem) != 4096 {
		t.Errorf("block of %d bytes", len(c.Mem))
	}

	k, err := Start(Spec{Exe: "/bin/sleep", Args: []string{"60"}, Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	k.Cmd.Process.Kill()
	if e := k.End(); e.Signal != "SIGKILL" || e.Status != -1 || !strings.Contains(e.State, "signal 9") {
		t.Errorf("end %+v, want SIGKILL", e)
	}
	if _, err := Start(Spec{Exe: "/nonexistent"}); err == nil {
		t.Error("a missing binary started")
	}
}
