package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// A payload echoed by the built-in target leaves in segments of the MSS in
// use: TCP_MAXSEG minus the 12 bytes of the timestamp option.
func TestSegmentCounts(t *testing.T) {
	noLeftovers(t)
	for _, tc := range []struct {
		payload, mss, segs int
		split              string
	}{{5000, 1460, 4, "1448+1448+1448+656"}, {5000, 1000, 6, "988×5+60"}} {
		t.Run(strconv.Itoa(tc.payload)+"@"+strconv.Itoa(tc.mss), func(t *testing.T) {
			csvPath := filepath.Join(t.TempDir(), "c.csv")
			s := runJSON(t, "--connections", "20", "--payload", strconv.Itoa(tc.payload), "--mss", strconv.Itoa(tc.mss),
				"--hold", "0s", "--csv", csvPath)
			sg := s.Segments
			if s.Outcomes["served"] != 20 || sg == nil || sg.MSSUsed != tc.mss-12 || sg.DataSegsOut != tc.segs || sg.Split != tc.split ||
				sg.Connections != 20 || sg.PayloadBytes != tc.payload {
				t.Fatalf("outcomes %v, segments %+v", s.Outcomes, sg)
			}
			rows := readCSV(t, csvPath)
			if got := strings.Join(rows[0][13:], ","); got != "bytes_sent,bytes_received,mss,data_segs_out,data_segs_in,retrans" {
				t.Fatalf("CSV header ends %q", got)
			}
			for _, r := range rows[1:] {
				if r[13] != strconv.Itoa(tc.payload) || r[15] != strconv.Itoa(tc.mss-12) || r[16] != strconv.Itoa(tc.segs) {
					t.Errorf("row %v", r)
				}
			}
		})
	}
}

// An echo that comes back altered is its own outcome, corrupt, with where it differs.
func TestCorruptEcho(t *testing.T) {
	noLeftovers(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	defer func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				// Echo everything, with the 100th byte flipped.
				b, err := io.ReadAll(io.LimitReader(c, 1000))
				if err != nil || len(b) < 100 {
					return
				}
				b[99] ^= 0x20
				c.Write(b)
			})
		}
	})
	// "none" means every attempt was served: wrong bytes fail --expect-limit
	// none, with a verdict of their own that says what came back.
	js := filepath.Join(t.TempDir(), "s.json")
	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"run", "-q", "--json", js, "--target", ln.Addr().String(), "--probe", "echo", "--payload", "1000",
		"--connections", "10", "--hold", "0s", "--expect-limit", "none"}, &stdout, &stderr)
	if exitCode(err) != exitGate || !strings.Contains(err.Error(), "gate --expect-limit failed") {
		t.Errorf("run = %v: want exit 1, the --expect-limit gate failed", err)
	}
	s := readSummary(t, js)
	if s.Outcomes["corrupt"] != 10 || s.FirstLimit != "corrupt-reply" || s.FirstLimitAt != 0 || !strings.Contains(s.Value, "echo differs at byte 99") {
		t.Fatalf("outcomes %v, first limit %s at %d (%q): want 10 corrupt, corrupt-reply at 0", s.Outcomes, s.FirstLimit, s.FirstLimitAt, s.Value)
	}
	if len(s.Reasons) != 1 || !strings.HasPrefix(s.Reasons[0].Reason, "echo differs at byte 99") || s.Reasons[0].Outcome != "corrupt" {
		t.Errorf("reasons %+v", s.Reasons)
	}
	if out := stdout.String(); strings.Contains(out, "was served") || !strings.Contains(out, "first limit: corrupt-reply") {
		t.Errorf("summary:\n%s", out)
	}
}
