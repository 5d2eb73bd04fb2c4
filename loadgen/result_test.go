package loadgen

import (
	"net/netip"
	"testing"
	"unsafe"
)

// A local address comes back as it was set, in its own family; a zone is
// not kept (loopback has none).
func TestResultLocal(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"127.1.0.1:40000", "127.1.0.1:40000"},
		{"[::1]:65535", "[::1]:65535"},
		{"[::ffff:127.0.0.1]:1", "[::ffff:127.0.0.1]:1"},
		{"[fe80::1%lo]:80", "[fe80::1]:80"},
		{"", "invalid AddrPort"},
	} {
		var a netip.AddrPort
		if tc.set != "" {
			a = netip.MustParseAddrPort(tc.set)
		}
		r := Result{Seq: 9}
		r.SetLocal(netip.MustParseAddrPort("[2001:db8::1]:7")) // overwritten whole
		r.SetLocal(a)
		if got := r.Local().String(); got != tc.want || r.Seq != 9 {
			t.Errorf("SetLocal(%q): Local() = %s, want %s", tc.set, got, tc.want)
		}
	}
}

// A million attempts are a million Results in the parent: its size is most
// of what a held connection costs the generator.
func TestResultSize(t *testing.T) {
	if n := unsafe.Sizeof(Result{}); n > 72 {
		t.Errorf("Result is %d bytes, want at most 72: keep the small fields together", n)
	}
}
