package report

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Output is a report file. A regular file (or a path that does not exist
// yet) is written atomically: built in a temporary file in the final file's
// own directory and renamed into place by Commit, so a reader never sees
// half a report and an aborted run leaves nothing behind. Anything else
// that exists (a character device such as /dev/null, a FIFO such as
// >(jq .), a socket, or a descriptor named through /proc/self/fd) is opened
// and written in place: replacing it would put a regular file where a
// device was, or write past the reader.
type Output struct {
	path  string // as given, for messages
	final string // where the file lands: path with symlinks followed
	tmp   string // the temporary file; "" when written in place
	mode  fs.FileMode
	keep  bool // replace an existing file: give the new one its mode
	f     *os.File
	temps *Temps
	*bufio.Writer
}

// Temps is the set of temporary report files not yet renamed into place,
// so a second interrupt can remove them before it exits. Safe for
// concurrent use; a nil *Temps tracks nothing.
type Temps struct {
	mu    sync.Mutex
	paths map[string]bool
}

func (t *Temps) add(p string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.paths == nil {
		t.paths = map[string]bool{}
	}
	t.paths[p] = true
}

func (t *Temps) remove(p string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.paths, p)
}

// RemoveAll deletes every temporary file still pending and returns how many
// there were.
func (t *Temps) RemoveAll() int {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for p := range t.paths {
		os.Remove(p)
	}
	n := len(t.paths)
	clear(t.paths)
	return n
}

// ErrIsDirectory is CreateOutput's error for a path that names a directory.
var ErrIsDirectory = errors.New("is a directory")

// CreateOutput opens the file at once, so a path that cannot be written
// fails before the run starts. temps, if not nil, tracks the temporary file
// until Commit or Abort.
func CreateOutput(path string, temps *Temps) (*Output, error) {
	o := &Output{path: path, final: path, mode: 0o666, temps: temps}
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return nil, fmt.Errorf("%s %w", path, ErrIsDirectory)
	case err == nil && (!fi.Mode().IsRegular() || throughProcFD(path)):
		// O_NONBLOCK: a FIFO nobody reads fails now (ENXIO) instead of
		// hanging the run; the runtime's poller keeps writes blocking for us.
		f, err := os.OpenFile(path, os.O_WRONLY|nonBlock, 0)
		if err != nil {
			return nil, fmt.Errorf("cannot write %s: %w", path, unwrapPath(err))
		}
		o.f = f
	case err == nil || errors.Is(err, fs.ErrNotExist):
		if err == nil {
			o.mode, o.keep = fi.Mode().Perm(), true
		}
		if real, err := filepath.EvalSymlinks(path); err == nil {
			o.final = real // replace the file a symlink names, not the symlink
		}
		if o.f, o.tmp, err = createTemp(o.final); err != nil {
			return nil, fmt.Errorf("cannot write %s: %w", path, unwrapPath(err))
		}
		temps.add(o.tmp)
	default:
		return nil, fmt.Errorf("cannot write %s: %w", path, unwrapPath(err))
	}
	o.Writer = bufio.NewWriterSize(o.f, 64<<10)
	return o, nil
}

// createTemp makes a hidden file beside final with mode 0666, so the umask
// gives it the mode any new file would get.
func createTemp(final string) (*os.File, string, error) {
	dir, base := filepath.Split(final)
	for range 100 {
		var b [6]byte
		rand.Read(b[:])
		name := filepath.Join(dir, "."+base+".tmp"+hex.EncodeToString(b[:]))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", fmt.Errorf("no free temporary name beside %s", final)
}

// throughProcFD says whether path reaches its file through a /proc/PID/fd
// link (/dev/stdout, /dev/fd/N): that file is someone's open descriptor,
// such as a shell's redirection, and replacing it would cut it off.
func throughProcFD(path string) bool {
	p := path
	for range 40 {
		if strings.HasPrefix(filepath.Clean(p), "/proc/") && strings.Contains(p, "/fd/") {
			return true
		}
		t, err := os.Readlink(p)
		if err != nil {
			return false
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(filepath.Dir(p), t)
		}
		p = t
	}
	return false
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Path is the path as given.
func (o *Output) Path() string { return o.path }

// Commit flushes and closes the file and, unless it was written in place,
// renames it into place with the mode of the file it replaces.
func (o *Output) Commit() error {
	err := o.Flush()
	if err == nil && o.keep {
		err = o.f.Chmod(o.mode)
	}
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err == nil && o.tmp != "" {
		err = os.Rename(o.tmp, o.final)
	}
	if o.tmp != "" {
		if err != nil {
			os.Remove(o.tmp)
		}
		o.temps.remove(o.tmp)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", o.path, unwrapPath(err))
	}
	return nil
}

// Abort removes the temporary file (a file written in place is only
// closed). It is safe after Commit.
func (o *Output) Abort() {
	o.f.Close()
	if o.tmp != "" {
		os.Remove(o.tmp)
		o.temps.remove(o.tmp)
	}
}

// SameFile says whether two output paths name one file, however spelt:
// the same absolute path once the directories' symlinks are resolved, or,
// where both exist, the same device and inode (a symlink, a hard link).
func SameFile(a, b string) bool {
	if fa, err := os.Stat(a); err == nil {
		if fb, err := os.Stat(b); err == nil {
			return os.SameFile(fa, fb)
		}
	}
	return canonical(a) == canonical(b)
}

func canonical(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(dir, filepath.Base(abs))
	}
	return abs
}
