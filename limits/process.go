package limits

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// ParseLimitsNoFile reads the "Max open files" line of /proc/PID/limits.
// "unlimited" is returned as ^uint64(0).
func ParseLimitsNoFile(r io.Reader) (soft, hard uint64, err error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Max open files")
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			return 0, 0, fmt.Errorf("limits: short Max open files line %q", sc.Text())
		}
		if soft, err = parseLimit(f[0]); err == nil {
			hard, err = parseLimit(f[1])
		}
		if err != nil {
			return 0, 0, err // never half a reading
		}
		return soft, hard, nil
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	return 0, 0, errors.New("limits: no Max open files line")
}

func parseLimit(s string) (uint64, error) {
	if s == "unlimited" {
		return ^uint64(0), nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("limits: %w", err)
	}
	return v, nil
}

// SocketOwners lists the processes that hold the socket with this inode (a
// listener found by sock_diag), by reading every /proc/PID/fd. Processes
// whose descriptors cannot be read (another user's, without privilege) are
// counted in denied.
func SocketOwners(procRoot string, inode uint32) (pids []int, denied int, err error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, 0, err
	}
	want := "socket:[" + strconv.FormatUint(uint64(inode), 10) + "]"
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(procRoot, e.Name(), "fd")
		fds, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrPermission) {
			denied++
			continue
		}
		for _, fd := range fds {
			if link, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && link == want {
				pids = append(pids, pid)
				break
			}
		}
	}
	slices.Sort(pids)
	return pids, denied, nil
}

// ProcWatch samples another process's descriptors and RLIMIT_NOFILE. Its
// files are opened once, so a sample needs no new descriptor. Methods are
// safe for concurrent use.
type ProcWatch struct {
	PID     int
	Name    string // /proc/PID/comm
	Cmdline string

	mu     sync.Mutex
	inv    *Inventory
	limits *os.File
	buf    []byte
}

// WatchProcess opens the process's fd directory and limits file. An error
// (no such process, permission denied) says what cannot be watched.
func WatchProcess(procRoot string, pid int) (*ProcWatch, error) {
	p := strconv.Itoa(pid)
	w := &ProcWatch{PID: pid, buf: make([]byte, 4096)}
	w.Name, w.Cmdline = ProcessNames(procRoot, pid)
	var err error
	if w.inv, err = OpenInventory(procRoot, p); err != nil {
		return w, fmt.Errorf("pid %d: %w", pid, err)
	}
	if w.limits, err = os.Open(filepath.Join(procRoot, p, "limits")); err != nil {
		w.inv.Close()
		return w, fmt.Errorf("pid %d: %w", pid, err)
	}
	return w, nil
}

// ProcessNames are pid's /proc/PID/comm and its command line, spaces for
// NULs; "" where unreadable.
func ProcessNames(procRoot string, pid int) (name, cmdline string) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	if b, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
		name = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		cmdline = strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
	}
	return name, cmdline
}

// ProcSample is one reading of a watched process.
type ProcSample struct {
	FDs  int // open descriptors
	Soft uint64
	Hard uint64
	// SlotsUsed counts descriptors numbered below the soft limit; SlotsUsed ==
	// Soft means accept() and open() now fail with EMFILE.
	SlotsUsed int
}

// AtLimit says whether the process has no descriptor slot left.
func (s ProcSample) AtLimit() bool { return s.Soft > 0 && uint64(s.SlotsUsed) >= s.Soft }

// Sample reads the process now; the limit is re-read each time, as servers
// often raise their own (nginx worker_rlimit_nofile).
func (w *ProcWatch) Sample() (ProcSample, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var s ProcSample
	if w.limits == nil {
		return s, os.ErrClosed
	}
	n, err := w.limits.ReadAt(w.buf, 0)
	if err != nil && err != io.EOF {
		return s, fmt.Errorf("pid %d: read limits: %w", w.PID, err)
	}
	if s.Soft, s.Hard, err = ParseLimitsNoFile(bytes.NewReader(w.buf[:n])); err != nil {
		return s, fmt.Errorf("pid %d: %w", w.PID, err)
	}
	if s.FDs, s.SlotsUsed, err = w.inv.CountBelow(s.Soft); err != nil {
		return s, fmt.Errorf("pid %d: %w", w.PID, err)
	}
	return s, nil
}

// Close releases the watch's files.
func (w *ProcWatch) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.limits != nil {
		w.limits.Close()
		w.limits = nil
	}
	if w.inv != nil {
		w.inv.Close()
	}
}
