package sockaddr

import (
	"net/netip"
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
		got, err := ParseList(tc.in)
		if (err == nil) != tc.ok || len(got) != tc.n || tc.ok && got[len(got)-1] != netip.MustParseAddr(tc.last) {
			t.Errorf("ParseList(%q) = %d addresses, %v", tc.in, len(got), err)
		}
	}
}

func FuzzParseList(f *testing.F) {
	f.Add("127.0.0.2-127.0.0.40,127.0.1.5")
	f.Add("::1-::5")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseList(s)
		if err == nil && (len(got) == 0 || len(got) > maxSources) {
			t.Fatalf("%q: %d addresses without an error", s, len(got))
		}
	})
}
