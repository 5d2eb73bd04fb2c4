package main

import (
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

	"github.com/connlimit/connlimit/limits"
)

// noLeftovers makes the test fail if, when it ends (after its other
// cleanups), a child of the test process is still there (running or not
// reaped) or the test process holds a listening socket it did not hold when
// the test began.
func noLeftovers(t *testing.T) {
	t.Helper()
	before := ourListeners(t)
	t.Cleanup(func() {
		var kids []int
		for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if kids = childrenOf(os.Getpid()); len(kids) == 0 || time.Now().After(deadline) {
				break
			}
		}
		if len(kids) > 0 {
			t.Errorf("child processes left behind: %v", kids)
		}
		for inode, addr := range ourListeners(t) {
			if _, ok := before[inode]; !ok {
				t.Errorf("listening socket left open: %s (inode %d)", addr, inode)
			}
		}
	})
}

// ourListeners maps the inodes of this process's listening TCP sockets to their addresses.
func ourListeners(t *testing.T) map[uint32]string {
	t.Helper()
	d, err := limits.OpenSockDiag()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ls, err := d.Listeners(0)
	if err != nil {
		t.Fatal(err)
	}
	all := map[uint32]string{}
	for _, l := range ls {
		all[l.Inode] = l.Addr.String()
	}
	ours := map[uint32]string{}
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue
		}
		if s, ok := strings.CutPrefix(link, "socket:["); ok {
			if n, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 32); err == nil {
				if addr, ok := all[uint32(n)]; ok {
					ours[uint32(n)] = addr
				}
			}
		}
	}
	return ours
}

// The readings noLeftovers relies on see what they are there to catch.
func TestLeftoverReadings(t *testing.T) {
	before := ourListeners(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if got := ourListeners(t); len(got) != len(before)+1 {
		t.Errorf("an open listener was not seen: %v", got)
	}
	ln.Close()
	if got := ourListeners(t); len(got) != len(before) {
		t.Errorf("a closed listener is still seen: %v", got)
	}
	cmd := exec.Command("sleep", "5")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if kids := childrenOf(os.Getpid()); !slices.Contains(kids, cmd.Process.Pid) {
		t.Errorf("children %v lack the running sleep %d", kids, cmd.Process.Pid)
	}
	cmd.Process.Kill()
	if kids := childrenOf(os.Getpid()); !slices.Contains(kids, cmd.Process.Pid) {
		t.Errorf("children %v lack the unreaped sleep %d", kids, cmd.Process.Pid)
	}
	cmd.Wait()
	if kids := childrenOf(os.Getpid()); slices.Contains(kids, cmd.Process.Pid) {
		t.Errorf("children %v still hold the reaped sleep", kids)
	}
}
