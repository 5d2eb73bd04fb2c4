package limits

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FilterRule is an nftables rule with a counter, as "table inet t chain
// input: tcp dport 80 ... reject with tcp reset", and its packets.
type FilterRule struct {
	Rule    string `json:"rule"`
	Packets uint64 `json:"packets"`
}

var counterRe = regexp.MustCompile(`counter packets (\d+) bytes \d+ ?`)

// NftRules lists the rules with counters of this network namespace's
// nftables ruleset (nft -a list ruleset), keyed by table, chain and handle.
// It fails without nft or without the right to list (not root).
func NftRules(ctx context.Context) (map[string]FilterRule, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nft", "-a", "list", "ruleset").Output()
	if err != nil {
		return nil, err
	}
	return parseNftRules(out), nil
}

func parseNftRules(out []byte) map[string]FilterRule {
	rules := map[string]FilterRule{}
	var table, chain string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		text, handle, _ := strings.Cut(line, " # handle ")
		switch {
		case strings.HasPrefix(line, "table "):
			table = strings.TrimSuffix(strings.TrimSpace(strings.TrimSuffix(text, "{")), " ")
		case strings.HasPrefix(line, "chain "):
			chain = strings.TrimSpace(strings.TrimSuffix(text, "{"))
		case handle != "":
			m := counterRe.FindStringSubmatch(text)
			if m == nil {
				continue
			}
			n, _ := strconv.ParseUint(m[1], 10, 64)
			rule := table + " " + chain + ": " + strings.TrimSpace(counterRe.ReplaceAllString(text, "counter "))
			rules[table+"/"+chain+"/"+handle] = FilterRule{Rule: rule, Packets: n}
		}
	}
	return rules
}

// Moved is the rules whose counters grew from base to now, most packets first.
func Moved(base, now map[string]FilterRule) []FilterRule {
	out := []FilterRule{}
	for k, r := range now {
		if d := r.Packets - base[k].Packets; r.Packets > base[k].Packets {
			out = append(out, FilterRule{Rule: r.Rule, Packets: d})
		}
	}
	slices.SortFunc(out, func(a, b FilterRule) int {
		return cmp.Or(cmp.Compare(b.Packets, a.Packets), strings.Compare(a.Rule, b.Rule))
	})
	return out
}
