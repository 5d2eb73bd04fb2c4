package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestQuietTeardown: against the built-in target both ends of every
// connection are connlimit's, so with CAP_NET_ADMIN (root) both are closed
// in TCP repair mode and the teardown sends no packet at all. Without it
// (as nobody) every client resets its connection, as before. Either way
// nothing is left on the port, and the report is the same.
func TestQuietTeardown(t *testing.T) {
	noLeftovers(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root: the quiet teardown needs CAP_NET_ADMIN, and nft counts the packets")
	}
	const n = 1000
	for _, tc := range []struct {
		name   string
		procs  string
		nobody bool
		resets int64 // packets with RST to or from the target's port
	}{
		{"root, in-process generator", "1", false, 0},
		{"root, generator workers", "2", false, 0},
		{"nobody, generator workers", "2", true, n},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			resets, _ := portPackets(t, port, "tcp flags & rst == rst")
			fins, _ := portPackets(t, port, "tcp flags & fin == fin")
			args := []string{"run", "--connections", strconv.Itoa(n), "--target-port", strconv.Itoa(port), "--target-procs", "1",
				"--procs", tc.procs, "--hold", "0s", "-q", "--json"}
			var js string
			if tc.nobody {
				cmd, dir := asNobody(t)
				js = filepath.Join(dir, "s.json")
				cmd.Args = append(cmd.Args, append(args, js)...)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("run as nobody: %v\n%s", err, out)
				}
			} else {
				js = filepath.Join(t.TempDir(), "s.json")
				var stdout, stderr bytes.Buffer
				if err := run(context.Background(), append(args, js), &stdout, &stderr); err != nil {
					t.Fatalf("run: %v\n%s", err, stderr.String())
				}
			}
			noProcessLeft(t)
			s := readSummary(t, js)
			if s.Outcomes["served"] != n || s.FirstLimit != "none" {
				t.Errorf("outcomes %v, first limit %q: want %d served and none", s.Outcomes, s.FirstLimit, n)
			}
			if got := resets(); got != tc.resets {
				t.Errorf("%d resets on port %d: want %d", got, port, tc.resets)
			}
			if got := fins(); got != 0 {
				t.Errorf("%d FINs on port %d: want none (the clients reset or close quietly)", got, port)
			}
			if left := portSockets(t, port); left > 0 {
				t.Errorf("%d sockets left on port %d after the run", left, port)
			}
		})
	}
}
