package limits

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// FD is one open descriptor of a process.
type FD struct {
	Num  int    `json:"fd"`
	Kind string `json:"kind"`
	Link string `json:"target"`
}

// Descriptor kinds KindOf tells apart from the /proc/PID/fd link alone.
const (
	KindStdio   = "stdio"
	KindSocket  = "socket"
	KindEpoll   = "epoll"
	KindEventfd = "eventfd"
	KindPipe    = "pipe"
	KindCgroup  = "cgroup"
	KindPidfd   = "pidfd"
	KindFile    = "file"
	KindOther   = "other"
)

// KindOf names what a descriptor is from its number and link text. The Go
// runtime's netpoller holds an epoll and an eventfd; it keeps the cgroup
// cpu.max (or cfs quota/period) files open to follow CPU limits.
func KindOf(num int, link string) string {
	switch {
	case num <= 2:
		return KindStdio
	case strings.HasPrefix(link, "socket:"):
		return KindSocket
	case link == "anon_inode:[eventpoll]":
		return KindEpoll
	case link == "anon_inode:[eventfd]":
		return KindEventfd
	case link == "anon_inode:[pidfd]":
		return KindPidfd
	case strings.HasPrefix(link, "pipe:"):
		return KindPipe
	case strings.HasPrefix(link, "/sys/fs/cgroup/"):
		return KindCgroup
	case strings.HasPrefix(link, "/"):
		return KindFile
	default:
		return KindOther
	}
}

// Inventory lists a process's open descriptors. It keeps its directory open,
// so it still works when the process is out of descriptors (at EMFILE opening
// /proc/self/fd would fail); that directory is itself one of the listed fds.
// Methods are safe for concurrent use.
type Inventory struct {
	mu   sync.Mutex
	dir  *os.File
	path string
	buf  []byte // getdents buffer, reused
	// above counts the descriptors numbered at or above aboveLimit at the
	// last listing. No descriptor can be made at or above the soft limit
	// (open, dup2 and F_DUPFD refuse), so while that limit holds and none
	// was there, none will be: the count of open ones is all that changes.
	above      int
	aboveLimit uint64
}

// OpenInventory opens procRoot/pid/fd; pid "self" means the caller.
func OpenInventory(procRoot, pid string) (*Inventory, error) {
	path := filepath.Join(procRoot, pid, "fd")
	dir, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open fd inventory: %w", err)
	}
	return &Inventory{dir: dir, path: path}, nil
}

// Fd is the inventory's own descriptor number.
func (inv *Inventory) Fd() int { return int(inv.dir.Fd()) }

// Close releases the directory. Calling it twice is harmless.
func (inv *Inventory) Close() error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.dir == nil {
		return nil
	}
	err := inv.dir.Close()
	inv.dir = nil
	return err
}

func (inv *Inventory) names() ([]string, error) {
	if inv.dir == nil {
		return nil, os.ErrClosed
	}
	if _, err := inv.dir.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind %s: %w", inv.path, err)
	}
	names, err := inv.dir.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", inv.path, err)
	}
	return names, nil
}

// Count is the number of open descriptors.
func (inv *Inventory) Count() (int, error) {
	total, _, err := inv.CountBelow(0)
	return total, err
}

// CountBelow counts the open descriptors, and those numbered below limit
// (the ones that take a slot of a soft limit). It allocates nothing per
// descriptor, and lists the directory only when it must: the first time
// for a limit, and while some descriptor is numbered above it.
func (inv *Inventory) CountBelow(limit uint64) (total, below int, err error) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.dir == nil {
		return 0, 0, os.ErrClosed
	}
	if n, ok := statCount(inv.dir); ok {
		if limit == 0 {
			return n, 0, nil
		}
		if limit == inv.aboveLimit && inv.above == 0 {
			return n, n, nil
		}
	}
	if inv.buf == nil {
		inv.buf = make([]byte, 32<<10)
	}
	total, below, err = countDir(inv.dir, inv.buf, limit)
	if err != nil {
		return 0, 0, fmt.Errorf("list %s: %w", inv.path, err)
	}
	inv.above, inv.aboveLimit = total-below, limit
	return total, below, nil
}

// List returns every open descriptor with its kind, in fd order. A descriptor
// closed between listing and readlink is skipped.
func (inv *Inventory) List() ([]FD, error) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	names, err := inv.names()
	if err != nil {
		return nil, err
	}
	fds := make([]FD, 0, len(names))
	for _, name := range names {
		num, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		link, err := os.Readlink(filepath.Join(inv.path, name))
		if err != nil {
			continue
		}
		fds = append(fds, FD{Num: num, Kind: KindOf(num, link), Link: link})
	}
	slices.SortFunc(fds, func(a, b FD) int { return cmp.Compare(a.Num, b.Num) })
	return fds, nil
}
