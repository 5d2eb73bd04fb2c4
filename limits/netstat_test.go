package limits

import (
	"strings"
	"testing"
)

func TestParseTCPExt(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     TCPExt
		wantErr  string
	}{
		{name: "fixture order", in: "TcpExt: SyncookiesSent ListenOverflows ListenDrops X\nTcpExt: 3 7 9 1\nIpExt: A\nIpExt: 2\n",
			want: TCPExt{SyncookiesSent: 3, ListenOverflows: 7, ListenDrops: 9}},
		{name: "all five", in: "TcpExt: ListenOverflows ListenDrops SyncookiesSent TCPReqQFullDrop TCPReqQFullDoCookies\nTcpExt: 1 2 3 4 5\n",
			want: TCPExt{1, 2, 3, 4, 5}},
		{name: "table after another", in: "IpExt: A\nIpExt: 1\nTcpExt: ListenDrops\nTcpExt: 42\n", want: TCPExt{ListenDrops: 42}},
		{name: "missing", in: "IpExt: A\nIpExt: 1\n", wantErr: "no TcpExt"},
		{name: "short values", in: "TcpExt: ListenDrops ListenOverflows\nTcpExt: 42\n", wantErr: "2 names but 1 values"},
		{name: "not a number", in: "TcpExt: ListenDrops\nTcpExt: x\n", wantErr: "ListenDrops"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTCPExt(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestNetstatFixture(t *testing.T) {
	n, err := OpenNetstat("testdata/proc")
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for range 2 { // a second read through the same descriptor sees the same file
		got, err := n.Read()
		if err != nil {
			t.Fatal(err)
		}
		if got.ListenOverflows != 1295 || got.ListenDrops != 1295 {
			t.Fatalf("fixture counters = %+v, want ListenOverflows and ListenDrops 1295", got)
		}
	}
	if d := (TCPExt{ListenDrops: 10, SyncookiesSent: 1}).Sub(TCPExt{ListenDrops: 4}); d != (TCPExt{ListenDrops: 6, SyncookiesSent: 1}) {
		t.Errorf("Sub = %+v", d)
	}
}

func FuzzParseTCPExt(f *testing.F) {
	f.Add("TcpExt: ListenOverflows ListenDrops\nTcpExt: 1 2\n")
	f.Add("TcpExt: a\nTcpExt: \n")
	f.Fuzz(func(t *testing.T, in string) {
		_, _ = ParseTCPExt(strings.NewReader(in)) // must not panic
	})
}
