package limits

import "testing"

func TestReadConntrack(t *testing.T) {
	c, err := ReadConntrack("testdata/proc")
	if err != nil {
		t.Fatal(err)
	}
	// drop 0x60+0x54, early_drop 1, insert_failed 2, over two CPUs.
	if c.Count != 250 || c.Max != 256 || c.Drop != 180 || c.EarlyDrop != 1 || c.InsertFailed != 2 {
		t.Errorf("read %+v", c)
	}
	if n := c.Refused(Conntrack{Drop: 100}); n != 83 {
		t.Errorf("refused since a baseline of 100 drops: %d, want 83", n)
	}
	if _, err := ReadConntrack(t.TempDir()); err == nil {
		t.Error("no conntrack files, no error")
	}
}
