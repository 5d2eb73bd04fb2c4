package limits

import (
	"bufio"
	"go.uber.org/goleak"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseLimitsNoFile(t *testing.T) {
	for _, tc := range []struct {
		in         string
		soft, hard uint64
		ok         bool
	}{
		{"Limit  Soft Limit  Hard Limit  Units\nMax open files            1024                 4096                 files\n", 1024, 4096, true},
		{"Max open files unlimited unlimited files\n", ^uint64(0), ^uint64(0), true},
		{"Max processes 5 5 processes\n", 0, 0, false},
		{"Max open files 12\n", 0, 0, false},
		{"Max open files x 12 files\n", 0, 0, false},
	} {
		soft, hard, err := ParseLimitsNoFile(strings.NewReader(tc.in))
		if soft != tc.soft || hard != tc.hard || (err == nil) != tc.ok {
			t.Errorf("ParseLimitsNoFile(%q) = %d, %d, %v", tc.in, soft, hard, err)
		}
	}
}

// fillEnv makes the test binary a process that sets its soft limit to 10,
// opens files until EMFILE, says so, and waits to be killed.
const fillEnv = "LIMITS_TEST_FILL"

func TestMain(m *testing.M) {
	if os.Getenv(fillEnv) == "1" {
		if _, err := SetSoft(10); err != nil {
			panic(err)
		}
		for {
			if _, err := os.Open(os.DevNull); err != nil {
				break
			}
		}
		os.Stdout.WriteString("full\n")
		time.Sleep(30 * time.Second)
		return
	}
	goleak.VerifyTestMain(m) // every goroutine a test starts must be stopped by its owner
}

// A child at its limit is seen so from outside, through descriptors the
// watch opened once.
func TestProcWatchAtLimit(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), fillEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "full\n" {
		t.Fatalf("child said %q, %v", line, err)
	}
	w, err := WatchProcess(DefaultProcRoot, cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s, err := w.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if !s.AtLimit() || s.Soft != 10 || s.SlotsUsed != 10 || w.Name != "limits.test" {
		t.Fatalf("sample %+v of %q: want 10 of 10 slots used", s, w.Name)
	}
}

func TestSocketOwners(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d, err := OpenSockDiag()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ls, err := d.Listeners(uint16(ln.Addr().(*net.TCPAddr).Port))
	if err != nil || len(ls) != 1 {
		t.Fatalf("listeners %v, %v", ls, err)
	}
	pids, _, err := SocketOwners(DefaultProcRoot, ls[0].Inode)
	if err != nil || !slices.Equal(pids, []int{os.Getpid()}) {
		t.Fatalf("owners of inode %d = %v, %v; want this process %d", ls[0].Inode, pids, err, os.Getpid())
	}
}

// CountBelow (getdents, no allocation per entry) agrees with List (readdir + readlink).
func TestCountBelowAgreesWithList(t *testing.T) {
	var files []*os.File
	for range 40 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	inv, err := OpenInventory(DefaultProcRoot, "self")
	if err != nil {
		t.Fatal(err)
	}
	defer inv.Close()
	fds, err := inv.List()
	if err != nil {
		t.Fatal(err)
	}
	limit := uint64(fds[len(fds)/2].Num)
	wantBelow := 0
	for _, fd := range fds {
		if uint64(fd.Num) < limit {
			wantBelow++
		}
	}
	total, below, err := inv.CountBelow(limit)
	if err != nil || total != len(fds) || below != wantBelow {
		t.Errorf("CountBelow(%d) = %d, %d, %v; List says %d, %d", limit, total, below, err, len(fds), wantBelow)
	}

	// With nothing above the limit, later counts come from the directory's
	// size (Linux 6.2+): they must still agree with a listing.
	limit = uint64(fds[len(fds)-1].Num) + 100
	for i, step := range []int{0, 10, -25} {
		for ; step > 0; step-- {
			f, err := os.Open(os.DevNull)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		for ; step < 0; step++ {
			files[len(files)-1].Close()
			files = files[:len(files)-1]
		}
		fds, err := inv.List()
		if err != nil {
			t.Fatal(err)
		}
		total, below, err := inv.CountBelow(limit)
		if err != nil || total != len(fds) || below != len(fds) {
			t.Errorf("step %d: CountBelow(%d) = %d, %d, %v; List says %d below", i, limit, total, below, err, len(fds))
		}
		if n, ok := statCount(inv.dir); ok && n != len(fds) {
			t.Errorf("step %d: the fd directory's size says %d open, List %d", i, n, len(fds))
		} else if !ok {
			t.Log("this kernel does not report the open count as the fd directory's size: listings only")
		}
	}
}

func FuzzParseLimitsNoFile(f *testing.F) {
	f.Add("Max open files            1024                 4096                 files\n")
	f.Add("Max open files unlimited unlimited files\n")
	f.Fuzz(func(t *testing.T, in string) {
		soft, hard, err := ParseLimitsNoFile(strings.NewReader(in))
		if err != nil && (soft != 0 || hard != 0) {
			t.Fatalf("error %v with values %d %d", err, soft, hard)
		}
	})
}
