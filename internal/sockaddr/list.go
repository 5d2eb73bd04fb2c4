package sockaddr

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// maxSources bounds --source-ips: a /16 of loopback is more than any run needs.
const maxSources = 1 << 16

// ParseList reads "127.0.0.2-127.0.0.40,127.0.1.5": addresses and
// inclusive ranges of one family, in order, without repeats.
func ParseList(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		lo, hi, isRange := strings.Cut(item, "-")
		a, err := netip.ParseAddr(lo)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or a range", item)
		}
		b := a
		if isRange {
			if b, err = netip.ParseAddr(hi); err != nil || b.Is4() != a.Is4() || b.Less(a) {
				return nil, fmt.Errorf("%q is not a range LOW-HIGH of one family", item)
			}
		}
		for x := a; ; x = x.Next() {
			if len(out) > 0 && x.Is4() != out[0].Is4() {
				return nil, fmt.Errorf("%s: every source address must be of one family", x)
			}
			if !seen[x] {
				seen[x] = true
				out = append(out, x)
			}
			if len(out) > maxSources {
				return nil, fmt.Errorf("more than %d addresses", maxSources)
			}
			if x == b {
				break
			}
		}
	}
	return out, nil
}

// IsLoopbackHostPort says whether HOST:PORT names this machine: localhost
// or a loopback address.
func IsLoopbackHostPort(hp string) bool {
	host, _, err := net.SplitHostPort(hp)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
