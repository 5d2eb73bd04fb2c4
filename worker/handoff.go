package worker

import (
	"bufio"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"syscall"
	"time"

	"github.com/connlimit/connlimit/loadgen"
)

// A worker hands its attempts to the parent as fixed-size binary records,
// then the few that carry more (reasons, TCP_INFO readings) as gob. Gob
// through reflection cost a million-connection run about two seconds of
// CPU on each side of the pipe, while the machine was tearing down two
// million sockets; a record is written and read with no reflection and no
// allocation.
const (
	handoffMagic = "CLR1"
	recordSize   = 68
)

// handoffTail is what is not in the records.
type handoffTail struct {
	Reasons map[int32]string
	Segs    []loadgen.SegInfo
}

func encodeAttempts(w io.Writer, a loadgen.Attempts) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var hdr [8]byte
	copy(hdr[:4], handoffMagic)
	binary.LittleEndian.PutUint32(hdr[4:], uint32(len(a.Results)))
	bw.Write(hdr[:])
	var rec [recordSize]byte
	for i := range a.Results {
		putRecord(&rec, &a.Results[i])
		if _, err := bw.Write(rec[:]); err != nil {
			return err
		}
	}
	if err := gob.NewEncoder(bw).Encode(handoffTail{a.Reasons, a.Segs}); err != nil {
		return err
	}
	return bw.Flush()
}

func decodeAttempts(r io.Reader) (loadgen.Attempts, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var hdr [8]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return loadgen.Attempts{}, fmt.Errorf("results header: %w", err)
	}
	if string(hdr[:4]) != handoffMagic {
		return loadgen.Attempts{}, errors.New("results: not a worker's hand-off")
	}
	n := binary.LittleEndian.Uint32(hdr[4:])
	if n > math.MaxInt32/recordSize {
		return loadgen.Attempts{}, fmt.Errorf("results: %d records", n)
	}
	// Grown as records arrive, not trusted from the header: a truncated
	// stream costs what it holds.
	a := loadgen.Attempts{Results: make([]loadgen.Result, 0, min(n, 1<<16))}
	var rec [recordSize]byte
	for range n {
		if _, err := io.ReadFull(br, rec[:]); err != nil {
			return loadgen.Attempts{}, fmt.Errorf("results: record %d of %d: %w", len(a.Results)+1, n, err)
		}
		a.Results = append(a.Results, getRecord(&rec))
	}
	var tail handoffTail
	if err := gob.NewDecoder(br).Decode(&tail); err != nil {
		return loadgen.Attempts{}, fmt.Errorf("results: reasons and readings: %w", err)
	}
	a.Reasons, a.Segs = tail.Reasons, tail.Segs
	return a, nil
}

func putRecord(b *[recordSize]byte, r *loadgen.Result) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], r.Seq)
	le.PutUint32(b[4:], uint32(r.FD))
	local := r.Local()
	ip := local.Addr()
	switch {
	case ip.Is4():
		b[26] = 4
	case ip.IsValid():
		b[26] = 6
	default:
		b[26] = 0
	}
	a16 := ip.As16() // zeros for no address
	copy(b[8:24], a16[:])
	le.PutUint16(b[24:], local.Port())
	b[27] = byte(r.Outcome)
	le.PutUint16(b[28:], r.Status)
	le.PutUint16(b[30:], r.Dst)
	b[32] = 0
	if r.Demoted {
		b[32] = 1
	}
	b[33], b[34], b[35] = 0, 0, 0
	le.PutUint32(b[36:], uint32(r.Errno))
	le.PutUint64(b[40:], uint64(r.Start))
	le.PutUint64(b[48:], uint64(r.Connect))
	le.PutUint64(b[56:], uint64(r.Greeting))
	le.PutUint32(b[64:], r.TargetSeq)
}

func getRecord(b *[recordSize]byte) loadgen.Result {
	le := binary.LittleEndian
	r := loadgen.Result{
		Seq: le.Uint32(b[0:]), FD: int32(le.Uint32(b[4:])), Outcome: loadgen.Outcome(b[27]),
		Status: le.Uint16(b[28:]), Dst: le.Uint16(b[30:]), Demoted: b[32] == 1, Errno: syscall.Errno(le.Uint32(b[36:])),
		Start: time.Duration(le.Uint64(b[40:])), Connect: time.Duration(le.Uint64(b[48:])),
		Greeting: time.Duration(le.Uint64(b[56:])), TargetSeq: le.Uint32(b[64:]),
	}
	port := le.Uint16(b[24:])
	switch b[26] {
	case 4:
		r.SetLocal(netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[20:24])), port))
	case 6:
		r.SetLocal(netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), port))
	}
	return r
}
