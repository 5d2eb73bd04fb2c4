package shm

import (
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
)

type counters struct{ a, b atomic.Int64 }

// TestSharedWithChild has a real child process map the block and count; the
// parent sees the counts without any message from it.
func TestSharedWithChild(t *testing.T) {
	if os.Getenv("SHM_TEST_CHILD") == "1" {
		mem, err := Inherit(3, 4096)
		if err != nil {
			os.Exit(3)
		}
		c := At[counters](mem)
		for range 1000 {
			c.a.Add(1)
		}
		c.b.Store(42)
		os.Exit(0)
	}
	mem, f, err := New(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer Unmap(mem)
	c := At[counters](mem)
	c.a.Store(7)
	cmd := exec.Command(os.Args[0], "-test.run=^TestSharedWithChild$")
	cmd.Env = append(os.Environ(), "SHM_TEST_CHILD=1")
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close() // the mapping keeps the block alive
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if a, b := c.a.Load(), c.b.Load(); a != 1007 || b != 42 {
		t.Fatalf("parent reads a=%d b=%d, want 1007 and 42", a, b)
	}
}

func TestAtTooSmall(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("At on 8 bytes for a 16-byte type did not panic")
		}
	}()
	At[counters](make([]byte, 8))
}
