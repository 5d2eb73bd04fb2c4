package shm

import (
	"os"

	"golang.org/x/sys/unix"
)

// New makes a zeroed block of size bytes, mapped here, and the file to hand
// to a child (it may be closed once the child has started: the mapping
// keeps the block alive).
func New(size int) ([]byte, *os.File, error) {
	fd, err := unix.MemfdCreate("connlimit-counters", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, os.NewSyscallError("memfd_create", err)
	}
	f := os.NewFile(uintptr(fd), "connlimit-counters")
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		f.Close()
		return nil, nil, os.NewSyscallError("ftruncate", err)
	}
	mem, err := Map(f, size)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return mem, f, nil
}

// Map maps size bytes of f shared. The caller may close f afterwards.
func Map(f *os.File, size int) ([]byte, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	return mem, nil
}

// Inherit maps the block a parent passed as descriptor fd and closes the
// descriptor: the mapping keeps the block, and a child that counts its
// descriptors against a limit has one fewer.
func Inherit(fd, size int) ([]byte, error) {
	f := os.NewFile(uintptr(fd), "connlimit-counters")
	if f == nil {
		return nil, os.NewSyscallError("mmap", unix.EBADF)
	}
	defer f.Close()
	return Map(f, size)
}

// Unmap releases a mapping; nothing may use the block afterwards.
func Unmap(mem []byte) error {
	return os.NewSyscallError("munmap", unix.Munmap(mem))
}
