package limits

import (
	"strings"
	"testing"
)

func TestParseMeminfo(t *testing.T) {
	m, err := ParseMeminfo(strings.NewReader("MemTotal:       24684084 kB\nMemFree:        1 kB\nMemAvailable:   24287240 kB\n"))
	if err != nil || m.Total != 24684084<<10 || m.Available != 24287240<<10 {
		t.Fatalf("%+v, %v", m, err)
	}
	for _, bad := range []string{"", "MemTotal: 5 kB\n", "MemTotal: x kB\nMemAvailable: 1 kB\n", "MemTotal:\nMemAvailable: 1 kB\n"} {
		if _, err := ParseMeminfo(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseMeminfo(f *testing.F) {
	f.Add("MemTotal: 100 kB\nMemAvailable: 50 kB\n")
	f.Fuzz(func(t *testing.T, in string) {
		m, err := ParseMeminfo(strings.NewReader(in))
		if err == nil && m.Total == 0 && m.Available == 0 && !strings.Contains(in, "0") {
			t.Fatalf("%q: zero memory without an error", in)
		}
	})
}
