package limits

import (
	"errors"
	"strings"
	"testing"
)

func TestHardLimitError(t *testing.T) {
	nf, err := ReadNoFile()
	if err != nil {
		t.Fatal(err)
	}
	_, err = SetSoft(nf.Hard + 1)
	var hl *HardLimitError
	if !errors.As(err, &hl) || hl.Hard != nf.Hard || !strings.Contains(err.Error(), "ulimit -Hn") {
		t.Fatalf("SetSoft(hard+1) = %v, want a HardLimitError with the fix", err)
	}
	if got, _ := ReadNoFile(); got != nf {
		t.Errorf("limits changed to %+v after a refused SetSoft", got)
	}
}
