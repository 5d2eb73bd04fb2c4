package report

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// writeReport writes text to a report at path and commits it.
func writeReport(t *testing.T, path, text string) {
	t.Helper()
	o, err := CreateOutput(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	o.WriteString(text)
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
}

// A new file gets 0666 less the umask; a replaced one keeps its mode; a
// symlink stays a symlink and its file gets the report.
func TestOutputModes(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)

	mode := func(path string) os.FileMode {
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode()
	}
	fresh := filepath.Join(dir, "new.json")
	writeReport(t, fresh, "{}")
	if m := mode(fresh).Perm(); m != 0o640 {
		t.Errorf("new file mode %v, want 0640 (0666 less umask 027)", m)
	}
	kept := filepath.Join(dir, "kept.csv")
	os.WriteFile(kept, []byte("old"), 0o600)
	os.Chmod(kept, 0o604) // a mode the umask would not give
	writeReport(t, kept, "new")
	if m := mode(kept).Perm(); m != 0o604 {
		t.Errorf("replaced file mode %v, want its old 0604", m)
	}
	link := filepath.Join(dir, "link.csv")
	os.Symlink("kept.csv", link)
	writeReport(t, link, "through the link")
	if mode(link)&os.ModeSymlink == 0 {
		t.Error("the symlink was replaced by a file")
	}
	if b, _ := os.ReadFile(kept); string(b) != "through the link" {
		t.Errorf("the linked file holds %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 3 {
		t.Errorf("directory holds %d entries, want 3 (no temporary file)", len(ents))
	}
}

// A FIFO is written in place (a reader sees the report, the FIFO stays);
// one nobody reads fails at once instead of hanging the run.
func TestOutputFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateOutput(fifo, nil); !errors.Is(err, syscall.ENXIO) {
		t.Errorf("FIFO without a reader: %v, want ENXIO", err)
	}
	got := make(chan string, 1)
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	o, err := CreateOutput(fifo, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Read only once the writer is open: before, a read finds no writer,
	// ends at EOF and closes the reader (CI saw ENXIO from that race).
	go func() {
		defer r.Close()
		b, _ := io.ReadAll(r)
		got <- string(b)
	}()
	o.WriteString("report\n")
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "report\n" {
		t.Errorf("reader got %q", s)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO is gone or replaced: %v %v", fi, err)
	}
}

// A path through /proc/self/fd (what /dev/stdout is) is someone's open
// descriptor: written in place even when it is a regular file, so a shell's
// redirection gets the report.
func TestOutputProcFD(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "redirected")
	os.WriteFile(name, []byte("kept\n"), 0o644)
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0) // a shell's >>
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi0, _ := f.Stat()
	fd := strconv.Itoa(int(f.Fd()))
	want := "kept\n"
	// /dev/fd is a symlink to /proc/self/fd, and /proc/self one to the PID.
	for _, path := range []string{"/proc/self/fd/" + fd, "/dev/fd/" + fd} {
		writeReport(t, path, path)
		want += path
		fi, err := os.Stat(name)
		if b, _ := os.ReadFile(name); err != nil || !os.SameFile(fi0, fi) || string(b) != want {
			t.Errorf("%s: the redirected file holds %q (%v), want %q, the same file, appended to", path, b, err, want)
		}
	}
}

// Temps removes what a second interrupt would find; Commit and Abort take
// their files out of it.
func TestOutputTemps(t *testing.T) {
	dir := t.TempDir()
	temps := &Temps{}
	var outs []*Output
	for _, name := range []string{"a.csv", "b.json", "c.csv"} {
		o, err := CreateOutput(filepath.Join(dir, name), temps)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, o)
	}
	outs[0].Commit()
	outs[1].Abort()
	if n := temps.RemoveAll(); n != 1 {
		t.Errorf("RemoveAll removed %d, want the 1 still pending", n)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || ents[0].Name() != "a.csv" {
		t.Errorf("directory holds %v, want only a.csv", ents)
	}
}

func TestSameFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	os.WriteFile("a.json", nil, 0o644)
	os.Link("a.json", "hard.json")
	os.Symlink("a.json", "soft.json")
	os.Mkdir("sub", 0o755)
	os.Symlink("sub", "sublink")
	abs := filepath.Join(dir, "a.json")
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"a.json", "./a.json", true},
		{"a.json", abs, true},
		{"a.json", "sub/../a.json", true},
		{"a.json", "hard.json", true},
		{"a.json", "soft.json", true},
		{"sub/new.csv", "sublink/new.csv", true}, // neither exists yet
		{"sub/new.csv", "./sub//new.csv", true},
		{"a.json", "b.json", false},
		{"sub/new.csv", "sub/other.csv", false},
	} {
		if got := SameFile(tc.a, tc.b); got != tc.same {
			t.Errorf("SameFile(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
}

// A symlink is followed as the kernel follows it with fs.protected_symlinks
// set, whatever the sysctl says here: another user's link in a sticky,
// world-writable directory such as /tmp is refused, so root's report cannot
// be aimed at a file the link's owner picked. A block device is refused too.
func TestOutputLinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("links of another user need root to make")
	}
	const nobody = 65534
	for _, tc := range []struct {
		name      string
		dirMode   os.FileMode // the directory that holds the link
		dirOwner  int
		linkOwner int
		through   bool // the link is a directory on the path, not the file
		refused   bool
	}{
		{"nobody's link in a sticky world-writable dir", os.ModeSticky | 0o777, 0, nobody, false, true},
		{"nobody's directory link in a sticky world-writable dir", os.ModeSticky | 0o777, 0, nobody, true, true},
		{"our own link there", os.ModeSticky | 0o777, 0, 0, false, false},
		{"the directory owner's link", os.ModeSticky | 0o777, nobody, nobody, false, false},
		{"nobody's link in a dir that is not sticky", 0o777, 0, nobody, false, false},
		{"nobody's link in a sticky dir only its owner writes", os.ModeSticky | 0o755, 0, nobody, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			shared, private := filepath.Join(root, "shared"), filepath.Join(root, "private")
			for _, d := range []string{shared, private} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			victim := filepath.Join(private, "victim.csv")
			os.WriteFile(victim, []byte("precious"), 0o600)
			link, path, target := filepath.Join(shared, "report.csv"), filepath.Join(shared, "report.csv"), victim
			if tc.through {
				link, path, target = filepath.Join(shared, "dir"), filepath.Join(shared, "dir", "victim.csv"), private
			}
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(link, tc.linkOwner, tc.linkOwner); err != nil {
				t.Fatal(err)
			}
			os.Chown(shared, tc.dirOwner, tc.dirOwner)
			os.Chmod(shared, tc.dirMode) // after the chown
			o, err := CreateOutput(path, nil)
			if tc.refused {
				if !errors.Is(err, ErrNotFollowed) {
					t.Fatalf("CreateOutput = %v, want ErrNotFollowed", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				o.WriteString("report")
				if err := o.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			want := map[bool]string{true: "precious", false: "report"}[tc.refused]
			if b, _ := os.ReadFile(victim); string(b) != want {
				t.Errorf("the linked file holds %q, want %q", b, want)
			}
			for _, d := range []string{shared, private} {
				ents, _ := os.ReadDir(d)
				if len(ents) != 1 {
					t.Errorf("%s holds %d entries, want 1 (no temporary file)", d, len(ents))
				}
			}
		})
	}

	dev := filepath.Join(t.TempDir(), "disk")
	if err := syscall.Mknod(dev, syscall.S_IFBLK|0o600, 7<<8|250); err != nil {
		t.Skipf("mknod: %v", err)
	}
	if _, err := CreateOutput(dev, nil); !errors.Is(err, ErrNotAFile) {
		t.Errorf("CreateOutput(block device) = %v, want ErrNotAFile", err)
	}
}

// A replaced file keeps its owner as well as its mode when root writes it.
func TestOutputKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a file away needs root")
	}
	path := filepath.Join(t.TempDir(), "theirs.json")
	os.WriteFile(path, []byte("old"), 0o640)
	os.Chown(path, 65534, 65534)
	writeReport(t, path, "new")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 65534 || st.Gid != 65534 || fi.Mode().Perm() != 0o640 {
		t.Errorf("replaced file: uid %d gid %d mode %v, want 65534 65534 0640", st.Uid, st.Gid, fi.Mode().Perm())
	}
}
