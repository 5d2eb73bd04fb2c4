package limits

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSysctlsFixture(t *testing.T) {
	got, err := ReadSysctls("testdata/proc")
	if err != nil {
		t.Fatal(err)
	}
	want := Sysctls{NrOpen: 1048576, FileMax: 2466170, FileNrAllocated: 1312, PortRange: PortRange{40000, 40199},
		Somaxconn: 4096, TCPMaxSynBacklog: 2048, TCPSyncookies: 1, TCPSynRetries: 6}
	if got != want {
		t.Errorf("ReadSysctls:\n got %+v\nwant %+v", got, want)
	}
	if n := got.PortRange.Count(); n != 200 {
		t.Errorf("port count %d, want 200", n)
	}
}

func TestReadSysctlsMissingAndMalformed(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "sys/fs"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "sys/fs/nr_open"), []byte("lots\n"), 0o644)
	os.WriteFile(filepath.Join(root, "sys/fs/file-max"), []byte("77\n"), 0o644)
	got, err := ReadSysctls(root)
	if err == nil || !strings.Contains(err.Error(), "nr_open") || !strings.Contains(err.Error(), "net.core.somaxconn") {
		t.Errorf("err = %v, want it to name the bad and the missing files", err)
	}
	if got.NrOpen != -1 || got.FileMax != 77 || got.Somaxconn != -1 || got.PortRange.Count() != 0 {
		t.Errorf("got %+v: unreadable values must be -1, readable ones kept", got)
	}
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		num  int
		link string
		want string
	}{
		{0, "/dev/null", KindStdio},
		{2, "pipe:[1]", KindStdio},
		{5, "socket:[123]", KindSocket},
		{6, "anon_inode:[eventpoll]", KindEpoll},
		{7, "anon_inode:[eventfd]", KindEventfd},
		{8, "anon_inode:[pidfd]", KindPidfd},
		{9, "pipe:[99]", KindPipe},
		{10, "/sys/fs/cgroup/cpu.max", KindCgroup},
		{11, "/tmp/x", KindFile},
		{12, "anon_inode:[timerfd]", KindOther},
	}
	for _, tc := range tests {
		if got := KindOf(tc.num, tc.link); got != tc.want {
			t.Errorf("KindOf(%d, %q) = %q, want %q", tc.num, tc.link, got, tc.want)
		}
	}
}

// The inventory must keep working when the process has no descriptor to
// spare: that is the moment it exists for.
func TestInventoryAtEMFILE(t *testing.T) {
	inv, err := OpenInventory(DefaultProcRoot, "self")
	if err != nil {
		t.Fatal(err)
	}
	defer inv.Close()
	before, err := inv.Count()
	if err != nil {
		t.Fatal(err)
	}
	var fds []*os.File
	defer func() {
		for _, f := range fds {
			f.Close()
		}
	}()
	for range 5 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, f)
	}
	list, err := inv.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != before+5 {
		t.Errorf("List has %d fds, want %d", len(list), before+5)
	}
	found := false
	for _, fd := range list {
		if fd.Num == inv.Fd() {
			found = true
		}
	}
	if !found {
		t.Errorf("the inventory's own fd %d is not listed", inv.Fd())
	}
}

func FuzzParseInts(f *testing.F) {
	f.Add("32768\t60999\n", 2)
	f.Add("4096\n", 1)
	f.Fuzz(func(t *testing.T, text string, n int) {
		if n < 0 || n > 8 {
			return
		}
		v, err := parseInts("fuzz", text, n)
		if err == nil && len(v) != n {
			t.Fatalf("%q: %d values, want %d", text, len(v), n)
		}
	})
}
