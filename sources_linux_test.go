package main

import (
	"path/filepath"
	"testing"
)

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
