package main

import (
	"net/netip"
	"path/filepath"
	"testing"
)

func TestParseAddrList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		ok   bool
		last string
	}{
		{"127.0.0.2-127.0.0.40", 39, true, "127.0.0.40"},
		{"127.0.0.2,127.0.1.5", 2, true, "127.0.1.5"},
		{"127.0.0.2-127.0.0.4,127.0.0.3", 3, true, "127.0.0.4"},
		{"127.0.0.255-127.0.1.1", 3, true, "127.0.1.1"},
		{"::1", 1, true, "::1"},
		{"127.0.0.4-127.0.0.2", 0, false, ""},
		{"127.0.0.1-::1", 0, false, ""},
		{"127.0.0.1,::1", 0, false, ""},
		{"localhost", 0, false, ""},
		{"127.0.0.0-127.1.0.0", 0, false, ""}, // more than 65536
		{"", 0, false, ""},
	} {
		got, err := parseAddrList(tc.in)
		if (err == nil) != tc.ok || len(got) != tc.n || tc.ok && got[len(got)-1] != netip.MustParseAddr(tc.last) {
			t.Errorf("parseAddrList(%q) = %d addresses, %v", tc.in, len(got), err)
		}
	}
}

func FuzzParseAddrList(f *testing.F) {
	f.Add("127.0.0.2-127.0.0.40,127.0.1.5")
	f.Add("::1-::5")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseAddrList(s)
		if err == nil && (len(got) == 0 || len(got) > maxSources) {
			t.Fatalf("%q: %d addresses without an error", s, len(got))
		}
	})
}

// Connections spread over the source addresses in turn.
func TestSourceIPsSpread(t *testing.T) {
	noLeftovers(t)
	csvPath := filepath.Join(t.TempDir(), "c.csv")
	s := runJSON(t, "--connections", "40", "--source-ips", "127.0.0.2-127.0.0.3", "--hold", "0s", "--csv", csvPath)
	if s.Outcomes["served"] != 40 {
		t.Fatalf("outcomes %v", s.Outcomes)
	}
	n := map[string]int{}
	for _, r := range readCSV(t, csvPath)[1:] {
		n[r[2]]++
	}
	if n["127.0.0.2"] != 20 || n["127.0.0.3"] != 20 {
		t.Errorf("local addresses %v: want 20 each", n)
	}
}

// Each source address has its own ephemeral ports: three addresses with a
// 100-port range hold 300 connections to one ip:port.
func TestNetNSSourceIPsMultiplyPorts(t *testing.T) {
	netnsOrSkip(t)
	noLeftovers(t)
	s := runJSON(t, "--netns", "--port-range", "40000-40099", "--source-ips", "127.0.0.2-127.0.0.4", "--connections", "350", "--hold", "0s")
	if s.FirstLimit != "ephemeral-ports" || s.FirstLimitAt != 300 || s.Outcomes["served"] != 300 || s.Outcomes["no-ephemeral-port"] != 50 {
		t.Errorf("first limit %s at %d, outcomes %v: want ephemeral-ports at 300", s.FirstLimit, s.FirstLimitAt, s.Outcomes)
	}
}
