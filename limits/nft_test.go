package limits

import (
	"fmt"
	"testing"
)

// ruleset is nft -a list ruleset with the per-source cap's counter at packets.
func ruleset(packets int) []byte {
	return fmt.Appendf(nil, `table inet t { # handle 1
	chain input { # handle 1
		type filter hook input priority filter; policy accept;
		tcp dport 9000 ct state new meter m size 65535 { ip saddr ct count over 50 } counter packets %d bytes 0 reject with tcp reset # handle 3
		tcp dport 22 accept # handle 4
		udp dport 53 counter packets 7 bytes 400 accept # handle 5
	}
}`, packets)
}

func TestParseNftRules(t *testing.T) {
	before, after := parseNftRules(ruleset(0)), parseNftRules(ruleset(150))
	if len(before) != 2 {
		t.Fatalf("rules %v: want the two with counters", before)
	}
	moved := Moved(before, after)
	want := "table inet t chain input: tcp dport 9000 ct state new meter m size 65535 { ip saddr ct count over 50 } counter reject with tcp reset"
	if len(moved) != 1 || moved[0].Packets != 150 || moved[0].Rule != want {
		t.Errorf("moved %+v, want %q with 150", moved, want)
	}
}
