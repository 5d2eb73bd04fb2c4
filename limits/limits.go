// Package limits reads the limits that decide how many TCP connections a
// process and a machine can hold: RLIMIT_NOFILE (including the soft limit a
// Go program inherited before the runtime raised it), the fs.* and net.*
// sysctls behind descriptors, ephemeral ports and the accept queue, and the
// inventory of a process's open descriptors.
//
// Readers of /proc take the proc root as a parameter so tests can point them
// at fixtures under testdata/.
package limits

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultProcRoot is where the live proc filesystem is mounted.
const DefaultProcRoot = "/proc"

// ErrUnsupported is returned on systems where a reading has no equivalent.
var ErrUnsupported = errors.New("not supported on this operating system")

// NoFile is a process's RLIMIT_NOFILE.
type NoFile struct {
	// Inherited is the soft limit the process was started with, before the Go
	// runtime raised it; 0 when it could not be learnt.
	Inherited uint64 `json:"inherited"`
	// InheritedFrom says how Inherited was learnt.
	InheritedFrom string `json:"inherited_from,omitempty"`
	Soft          uint64 `json:"soft"`
	Hard          uint64 `json:"hard"`
}

// InheritedText is Inherited for people: "unknown" when it could not be learnt.
func (n NoFile) InheritedText() string {
	if n.Inherited == 0 {
		return "unknown"
	}
	return strconv.FormatUint(n.Inherited, 10)
}

// PortRange is net.ipv4.ip_local_port_range.
type PortRange struct {
	Low  int `json:"low"`
	High int `json:"high"`
}

// Count is how many ephemeral ports the range holds: the number of
// connections one source address can open to one destination ip:port.
func (r PortRange) Count() int {
	if r.Low < 0 || r.High < r.Low {
		return 0 // unread or nonsensical
	}
	return r.High - r.Low + 1
}

// Sysctls are the kernel settings connlimit explains. A value that could not
// be read is -1.
type Sysctls struct {
	NrOpen           int64     `json:"fs_nr_open"`
	FileMax          int64     `json:"fs_file_max"`
	FileNrAllocated  int64     `json:"fs_file_nr_allocated"`
	PortRange        PortRange `json:"ip_local_port_range"`
	Somaxconn        int64     `json:"somaxconn"`
	TCPMaxSynBacklog int64     `json:"tcp_max_syn_backlog"`
	TCPSyncookies    int64     `json:"tcp_syncookies"`
	TCPSynRetries    int64     `json:"tcp_syn_retries"`
}

// ReadSysctls reads the sysctls under procRoot/sys. Files that are missing
// (another OS, a restricted container) leave -1 and are listed in the error,
// which callers may treat as a warning.
func ReadSysctls(procRoot string) (Sysctls, error) {
	s := Sysctls{NrOpen: -1, FileMax: -1, FileNrAllocated: -1, Somaxconn: -1,
		TCPMaxSynBacklog: -1, TCPSyncookies: -1, TCPSynRetries: -1, PortRange: PortRange{-1, -1}}
	var errs []error
	one := func(dst *int64, name string) {
		v, err := readInts(procRoot, name, 1)
		if err != nil {
			errs = append(errs, err)
			return
		}
		*dst = v[0]
	}
	one(&s.NrOpen, "fs/nr_open")
	one(&s.FileMax, "fs/file-max")
	one(&s.FileNrAllocated, "fs/file-nr")
	one(&s.Somaxconn, "net/core/somaxconn")
	one(&s.TCPMaxSynBacklog, "net/ipv4/tcp_max_syn_backlog")
	one(&s.TCPSyncookies, "net/ipv4/tcp_syncookies")
	one(&s.TCPSynRetries, "net/ipv4/tcp_syn_retries")
	if v, err := readInts(procRoot, "net/ipv4/ip_local_port_range", 2); err != nil {
		errs = append(errs, err)
	} else {
		s.PortRange = PortRange{Low: int(v[0]), High: int(v[1])}
	}
	return s, errors.Join(errs...)
}

// readInts parses the first n whitespace-separated integers of a sysctl file.
func readInts(procRoot, name string, n int) ([]int64, error) {
	path := filepath.Join(procRoot, "sys", name)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read sysctl %s: %w", strings.ReplaceAll(name, "/", "."), err)
	}
	return parseInts(path, string(b), n)
}

func parseInts(path, text string, n int) ([]int64, error) {
	fields := strings.Fields(text)
	if len(fields) < n {
		return nil, fmt.Errorf("parse %s: want %d integers, got %q", path, n, text)
	}
	out := make([]int64, n)
	for i := range n {
		v, err := strconv.ParseInt(fields[i], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", path, err)
		}
		out[i] = v
	}
	return out, nil
}

// Listener is a listening TCP socket as the kernel reports it.
type Listener struct {
	Addr netip.AddrPort `json:"addr"`
	// AcceptQueue is the connections that completed the handshake and wait
	// for accept() (ss Recv-Q).
	AcceptQueue uint32 `json:"accept_queue"`
	// Backlog is the listen backlog (ss Send-Q); the queue holds Backlog+1.
	Backlog uint32 `json:"backlog"`
	UID     uint32 `json:"uid"`
	Inode   uint32 `json:"inode"`
}
