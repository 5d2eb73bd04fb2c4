//go:build unix

package report

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

const nonBlock = syscall.O_NONBLOCK

// mayFollow applies the kernel's fs.protected_symlinks rule to link, found in
// dir, whatever the sysctl says: in a sticky, world-writable directory such
// as /tmp a symlink is followed only when it is ours or the directory
// owner's. Root writing a report there would otherwise replace whatever file
// another user's link names; the walk that resolves it reads links without
// the kernel's check.
func mayFollow(dir string, link fs.FileInfo) error {
	di, err := os.Stat(dir)
	if err != nil || di.Mode()&fs.ModeSticky == 0 || di.Mode().Perm()&0o002 == 0 {
		return nil
	}
	lu, _ := ownerOf(link)
	du, _ := ownerOf(di)
	if lu == os.Geteuid() || lu == du {
		return nil
	}
	return fmt.Errorf("%w: the link %s belongs to uid %d, in the sticky, world-writable %s (fs.protected_symlinks would not follow it either)",
		ErrNotFollowed, filepath.Join(dir, link.Name()), lu, dir)
}

// writable says whether this process may write the existing file at path:
// the report replaces it by a rename, which needs only the directory, so a
// file made read-only to keep it would be lost without this check.
func writable(path string) error {
	if err := unix.Access(path, unix.W_OK); err != nil {
		return os.NewSyscallError("access", err)
	}
	return nil
}

func ownerOf(fi fs.FileInfo) (uid, gid int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return -1, -1
}

// dupFD is a close-on-exec copy of fd, sharing its offset and flags.
func dupFD(fd int) (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0) }
