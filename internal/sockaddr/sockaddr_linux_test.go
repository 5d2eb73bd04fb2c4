package sockaddr

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

func TestToRawRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		len      uint32
		family   int
	}{
		{"127.0.0.2:8080", "127.0.0.2:8080", unix.SizeofSockaddrInet4, unix.AF_INET},
		{"[::ffff:127.0.0.1]:443", "127.0.0.1:443", unix.SizeofSockaddrInet4, unix.AF_INET},
		{"[::1]:65535", "[::1]:65535", unix.SizeofSockaddrInet6, unix.AF_INET6},
		{"10.0.0.1:0", "10.0.0.1:0", unix.SizeofSockaddrInet4, unix.AF_INET},
	} {
		rsa, n, family := ToRaw(netip.MustParseAddrPort(tc.in))
		if got := FromRaw(&rsa); got.String() != tc.want || n != tc.len || family != tc.family {
			t.Errorf("ToRaw(%s) = %s, len %d, family %d; want %s, %d, %d", tc.in, got, n, family, tc.want, tc.len, tc.family)
		}
	}
}
