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
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	keep  bool // replace an existing file: give the new one its mode and owner
	uid   int
	gid   int
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

// ErrNotAFile is CreateOutput's error for a path that names a block device:
// a report written there would overwrite a disk.
var ErrNotAFile = errors.New("is a block device, not a file")

// ErrReadOnly is CreateOutput's error for an existing file this process may
// not write: replacing it by a rename would need only the directory.
var ErrReadOnly = errors.New("is not writable by this user")

// ErrNotFollowed is CreateOutput's error for a path through another user's
// symlink in a sticky, world-writable directory.
var ErrNotFollowed = errors.New("symlink not followed")

// CreateOutput opens the file at once, so a path that cannot be written
// fails before the run starts. temps, if not nil, tracks the temporary file
// until Commit or Abort.
func CreateOutput(path string, temps *Temps) (*Output, error) {
	o := &Output{path: path, final: path, mode: 0o666, temps: temps}
	real, viaFD, err := followLinks(path)
	if err != nil {
		return nil, fmt.Errorf("cannot write %s: %w", path, unwrapPath(err))
	}
	fi, err := os.Stat(real)
	switch {
	case err == nil && fi.IsDir():
		return nil, fmt.Errorf("%s %w", path, ErrIsDirectory)
	case err == nil && fi.Mode()&fs.ModeDevice != 0 && fi.Mode()&fs.ModeCharDevice == 0:
		return nil, fmt.Errorf("%s %w", path, ErrNotAFile)
	case err == nil && (!fi.Mode().IsRegular() || viaFD):
		f, err := openInPlace(real)
		if err != nil {
			return nil, fmt.Errorf("cannot write %s: %w", path, unwrapPath(err))
		}
		o.f = f
	case err == nil || errors.Is(err, fs.ErrNotExist):
		if err == nil {
			if err := writable(real); err != nil {
				return nil, fmt.Errorf("%s %w (%v)", path, ErrReadOnly, unwrapPath(err))
			}
			o.mode, o.keep = fi.Mode().Perm(), true
			o.uid, o.gid = ownerOf(fi)
		}
		o.final = real // replace the file a symlink names, not the symlink
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

// openInPlace opens what exists at path to write it in place. A descriptor
// of this process's own (/dev/stdout, /dev/fd/N: /proc/PID/fd/N) is
// duplicated, not opened again: a new open would start at offset 0, without
// the O_APPEND of a shell's >>, and write over what the file held.
func openInPlace(path string) (*os.File, error) {
	if rest, ok := strings.CutPrefix(path, "/proc/"+strconv.Itoa(os.Getpid())+"/fd/"); ok {
		if fd, err := strconv.Atoi(rest); err == nil && fd >= 0 {
			nfd, err := dupFD(fd)
			if err != nil {
				return nil, &os.PathError{Op: "dup", Path: path, Err: err}
			}
			return os.NewFile(uintptr(nfd), path), nil
		}
	}
	// O_NONBLOCK: a FIFO nobody reads fails now (ENXIO) instead of
	// hanging the run; the runtime's poller keeps writes blocking for us.
	return os.OpenFile(path, os.O_WRONLY|nonBlock, 0)
}

// followLinks is path with every symlink on it resolved, as the kernel would
// with fs.protected_symlinks set (mayFollow); the part of it that does not
// exist yet is kept as written. A /proc/PID/fd link (what /dev/stdout and
// /dev/fd/N lead to) is not resolved, and viaFD says so: it is someone's open
// descriptor, such as a shell's redirection, to be written in place, as
// replacing its file would cut the descriptor off.
func followLinks(path string) (real string, viaFD bool, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", false, err
	}
	cur, todo, links := "/", strings.Split(abs, "/"), 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		if strings.HasPrefix(next, "/proc/") && strings.Contains(next, "/fd/") {
			return filepath.Join(append([]string{next}, todo...)...), true, nil
		}
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			return filepath.Join(append([]string{next}, todo...)...), false, nil
		}
		if err != nil {
			return "", false, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > 40 {
			return "", false, &os.PathError{Op: "open", Path: path, Err: syscall.ELOOP}
		}
		if err := mayFollow(cur, fi); err != nil {
			return "", false, err
		}
		t, err := os.Readlink(next)
		if err != nil {
			return "", false, err
		}
		if filepath.IsAbs(t) {
			cur = "/"
		}
		todo = append(strings.Split(t, "/"), todo...)
	}
	return cur, false, nil
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
		// Only root may give a file away; anyone else's new file is theirs
		// already, or keeps its group if they are in it.
		if o.uid >= 0 {
			if cerr := o.f.Chown(o.uid, o.gid); cerr != nil && !errors.Is(cerr, fs.ErrPermission) {
				err = cerr
			}
		}
		if err == nil {
			err = o.f.Chmod(o.mode) // after the chown, which may clear setgid
		}
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
