package limits

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// TCPExt holds the /proc/net/netstat TcpExt counters that tell what happened
// to connections a listener could not take. They are per network namespace
// and count every dropped SYN, retransmissions included.
type TCPExt struct {
	ListenOverflows      int64 `json:"ListenOverflows"`
	ListenDrops          int64 `json:"ListenDrops"`
	SyncookiesSent       int64 `json:"SyncookiesSent"`
	TCPReqQFullDrop      int64 `json:"TCPReqQFullDrop"`
	TCPReqQFullDoCookies int64 `json:"TCPReqQFullDoCookies"`
}

// Sub returns the counters' growth since base.
func (t TCPExt) Sub(base TCPExt) TCPExt {
	return TCPExt{
		ListenOverflows:      t.ListenOverflows - base.ListenOverflows,
		ListenDrops:          t.ListenDrops - base.ListenDrops,
		SyncookiesSent:       t.SyncookiesSent - base.SyncookiesSent,
		TCPReqQFullDrop:      t.TCPReqQFullDrop - base.TCPReqQFullDrop,
		TCPReqQFullDoCookies: t.TCPReqQFullDoCookies - base.TCPReqQFullDoCookies,
	}
}

// Fields pairs each counter with its kernel name, in a fixed order.
func (t TCPExt) Fields() []NamedCount {
	return []NamedCount{
		{"ListenOverflows", t.ListenOverflows},
		{"ListenDrops", t.ListenDrops},
		{"SyncookiesSent", t.SyncookiesSent},
		{"TCPReqQFullDrop", t.TCPReqQFullDrop},
		{"TCPReqQFullDoCookies", t.TCPReqQFullDoCookies},
	}
}

// NamedCount is one counter.
type NamedCount struct {
	Name  string
	Value int64
}

// ParseTCPExt reads the TcpExt table of /proc/net/netstat: a line of names
// followed by a line of values, both prefixed "TcpExt:". A counter the kernel
// does not have stays 0.
func ParseTCPExt(r io.Reader) (TCPExt, error) {
	var t TCPExt
	dst := map[string]*int64{
		"ListenOverflows": &t.ListenOverflows, "ListenDrops": &t.ListenDrops,
		"SyncookiesSent": &t.SyncookiesSent, "TCPReqQFullDrop": &t.TCPReqQFullDrop,
		"TCPReqQFullDoCookies": &t.TCPReqQFullDoCookies,
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 16<<10), 1<<20)
	var names []string
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "TcpExt:")
		if !ok {
			continue
		}
		if names == nil {
			names = strings.Fields(rest)
			continue
		}
		values := strings.Fields(rest)
		if len(values) != len(names) {
			return t, fmt.Errorf("netstat TcpExt: %d names but %d values", len(names), len(values))
		}
		for i, name := range names {
			p, ok := dst[name]
			if !ok {
				continue
			}
			v, err := strconv.ParseInt(values[i], 10, 64)
			if err != nil {
				return t, fmt.Errorf("netstat TcpExt %s: %w", name, err)
			}
			*p = v
		}
		return t, nil
	}
	if err := sc.Err(); err != nil {
		return t, fmt.Errorf("netstat: %w", err)
	}
	return t, fmt.Errorf("netstat: no TcpExt table")
}

// Netstat re-reads /proc/net/netstat through a descriptor opened once, so a
// reading still works when the process is out of descriptors.
type Netstat struct {
	f   *os.File
	buf []byte
}

// OpenNetstat opens procRoot/net/netstat: the calling process's network
// namespace.
func OpenNetstat(procRoot string) (*Netstat, error) {
	f, err := os.Open(filepath.Join(procRoot, "net", "netstat"))
	if err != nil {
		return nil, err
	}
	return &Netstat{f: f, buf: make([]byte, 16<<10)}, nil
}

// Read returns the counters now.
func (n *Netstat) Read() (TCPExt, error) {
	// /proc files may return less than asked per read: read until EOF.
	total := 0
	for {
		if total == len(n.buf) {
			n.buf = append(n.buf, make([]byte, len(n.buf))...)
		}
		k, err := n.f.ReadAt(n.buf[total:], int64(total))
		total += k
		if err == io.EOF || (err == nil && k == 0) {
			break
		}
		if err != nil {
			return TCPExt{}, fmt.Errorf("read %s: %w", n.f.Name(), err)
		}
	}
	return ParseTCPExt(bytes.NewReader(n.buf[:total]))
}

// Close releases the descriptor.
func (n *Netstat) Close() error { return n.f.Close() }
