package limits

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func fdSize(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "FDSize:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no FDSize in /proc/self/status")
	return 0
}

func TestGrowFDTable(t *testing.T) {
	lim, err := ReadNoFile()
	if err != nil {
		t.Fatal(err)
	}
	before := fdSize(t)
	want := before * 4
	if uint64(want) > lim.Soft {
		t.Skipf("soft limit %d leaves no room to grow a table of %d", lim.Soft, before)
	}
	inv, err := OpenInventory(DefaultProcRoot, "self")
	if err != nil {
		t.Fatal(err)
	}
	defer inv.Close()
	open, err := inv.Count()
	if err != nil {
		t.Fatal(err)
	}
	if err := GrowFDTable(want); err != nil {
		t.Fatal(err)
	}
	if got := fdSize(t); got < want {
		t.Errorf("FDSize after GrowFDTable(%d) = %d (was %d)", want, got, before)
	}
	if got, _ := inv.Count(); got != open {
		t.Errorf("%d descriptors open after GrowFDTable, %d before: it must leave none behind", got, open)
	}
}

func TestGrowFDTableKeepsOpenDescriptor(t *testing.T) {
	lim, err := ReadNoFile()
	if err != nil {
		t.Fatal(err)
	}
	top := fdSize(t)*8 - 1
	if uint64(top) >= lim.Soft {
		t.Skipf("soft limit %d is below %d", lim.Soft, top)
	}
	f, err := os.CreateTemp(t.TempDir(), "fd")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Dup3(int(f.Fd()), top, unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(top)
	if err := GrowFDTable(top + 1); err != nil {
		t.Fatal(err)
	}
	var st1, st2 unix.Stat_t
	if err := unix.Fstat(top, &st1); err != nil {
		t.Fatalf("descriptor %d was closed: %v", top, err)
	}
	if err := unix.Fstat(int(f.Fd()), &st2); err != nil || st1.Ino != st2.Ino {
		t.Fatalf("descriptor %d no longer refers to the file it was opened on", top)
	}
}
