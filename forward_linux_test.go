package main

import (
	"testing"
)

// With equal limits a forwarder runs out at about half the connections of
// the target behind it: each connection costs it two descriptors.
func TestForwarderRunsOutAtHalf(t *testing.T) {
	noLeftovers(t)
	common := []string{"--connections", "300", "--target-nofile", "128", "--greeting-timeout", "500ms", "--hold", "0s"}
	direct := runJSON(t, common...)
	fwd := runJSON(t, append(common, "--forward")...)
	if direct.FirstLimit != "target-fd-limit" || fwd.FirstLimit != "forwarder-fd-limit" {
		t.Fatalf("first limits %s and %s, want target-fd-limit and forwarder-fd-limit", direct.FirstLimit, fwd.FirstLimit)
	}
	ratio := float64(fwd.FirstLimitAt) / float64(direct.FirstLimitAt)
	if ratio < 0.4 || ratio > 0.6 {
		t.Errorf("forwarder ran out at %d, the target alone at %d: ratio %.2f, want about 0.5", fwd.FirstLimitAt, direct.FirstLimitAt, ratio)
	}
	// Slots are counted just after the first EMFILE, while handlers whose
	// dial failed are closing their clients: a few may be free by then.
	f := fwd.Forwarder
	if f == nil || f.FirstEMFILE == nil || f.NoFileSoft != 128 || f.FirstEMFILE.SlotsUsed < 120 {
		t.Fatalf("forwarder %+v", f)
	}
	// The served connections are the ones the forwarder held: what it
	// could not dial it closed, what it could not accept waits.
	if served := fwd.Outcomes["served"]; served < int(fwd.FirstLimitAt)-2 || served > int(fwd.FirstLimitAt)+2 {
		t.Errorf("served %d, forwarder ran out at %d connections", served, fwd.FirstLimitAt)
	}
	if fwd.Target.FirstEMFILE != nil {
		t.Errorf("the target ran out too: %+v", fwd.Target.FirstEMFILE)
	}
	if fwd.Setting != "the forwarder's RLIMIT_NOFILE (soft)" || fwd.Value != "128" {
		t.Errorf("setting %q = %q", fwd.Setting, fwd.Value)
	}
}
