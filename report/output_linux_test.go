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

// A new file gets 0666 less the umask; a replaced one keeps its mode; a
// symlink stays a symlink and its file gets the report.
func TestOutputModes(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)

	commit := func(path, text string) {
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
	mode := func(path string) os.FileMode {
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode()
	}
	fresh := filepath.Join(dir, "new.json")
	commit(fresh, "{}")
	if m := mode(fresh).Perm(); m != 0o640 {
		t.Errorf("new file mode %v, want 0640 (0666 less umask 027)", m)
	}
	kept := filepath.Join(dir, "kept.csv")
	os.WriteFile(kept, []byte("old"), 0o600)
	os.Chmod(kept, 0o604) // a mode the umask would not give
	commit(kept, "new")
	if m := mode(kept).Perm(); m != 0o604 {
		t.Errorf("replaced file mode %v, want its old 0604", m)
	}
	link := filepath.Join(dir, "link.csv")
	os.Symlink("kept.csv", link)
	commit(link, "through the link")
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
	f, err := os.Create(filepath.Join(dir, "redirected"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi0, _ := f.Stat()
	o, err := CreateOutput("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), nil)
	if err != nil {
		t.Fatal(err)
	}
	o.WriteString("x")
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	fi1, err := os.Stat(filepath.Join(dir, "redirected"))
	if err != nil || !os.SameFile(fi0, fi1) || fi1.Size() != 1 {
		t.Errorf("the redirected file was replaced or not written: %v %v", fi1, err)
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
