package main

import (
	"testing"

	"github.com/connlimit/connlimit/target"
)

func FuzzFlagValues(f *testing.F) {
	f.Add("40000-40199")
	f.Add("backoff")
	f.Add("1024-1023")
	f.Fuzz(func(t *testing.T, s string) {
		if r, err := parsePortRange(s); err == nil && (r.Low < 1024 || r.High > 65535 || r.Low >= r.High) {
			t.Fatalf("parsePortRange(%q) accepted %+v", s, r)
		}
		if p, err := target.ParsePolicy(s); err == nil && string(p) != s {
			t.Fatalf("ParsePolicy(%q) = %q", s, p)
		}
		if p, err := target.ParseCapPolicy(s); err == nil && string(p) != s {
			t.Fatalf("ParseCapPolicy(%q) = %q", s, p)
		}
	})
}
